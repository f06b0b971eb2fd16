"""What a new user met on a first project (FSDD digits, held out by speaker), fixed where it was met.

- `POST /stream` and the `/stream` WebSocket read a WAV sent to them by its header, as `hfspeech stream` reads a
  piped WAV: `curl -T take.wav .../stream` used to be read as raw PCM at the model's rate, the header as
  samples and an 8 kHz file at twice its speed, every event wrong and no error; a FLAC, MP3 ... sent there is
  refused rather than read as PCM (noise that fired events).
- `hfspeech export --eval_dir` given a missing folder or a manifest (what `evaluate --test_file` reads) says so,
  naming the flag, at once; it said "no audio files to evaluate on" after seconds of imports.
- `hfspeech evaluate RUN ...` takes the model first, as `predict`, `export`, `serve` and `stage` do, and its
  `--help` no longer lists the training flags it refuses.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import requests
import soundfile as sf

from hfspeech.serve.launcher import ServerProcess
from tests.conftest import synth_clip

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

QUERY = "min_windows=1&windows=true"


@pytest.fixture(scope="module")
def server(trained_cnn):
    with ServerProcess(trained_cnn) as running:
        yield running


def eight_khz_audio() -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.concatenate([synth_clip(kind, rng, 8000, 0.7) for kind in ("high", "low", "noise")])


def wav_bytes(audio: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def posted(server, data: bytes, query: str) -> list[dict]:
    response = requests.post(f"{server.url}/stream?{query}", data=data, timeout=60)
    return [json.loads(line) for line in response.text.splitlines()] if response.ok else [response.json()]


def assert_same_stream(ours: list[dict], expected: list[dict]) -> None:
    """The same events, windows and counts; scores within 1e-4 (the resampler sees other chunk boundaries)."""
    assert [{k: v for k, v in m.items() if k != "scores"} for m in ours] == \
        [{k: v for k, v in m.items() if k != "scores"} for m in expected]
    for got, want in zip(ours, expected):
        np.testing.assert_allclose(got.get("scores", []), want.get("scores", []), atol=1e-4)


def test_a_wav_posted_to_stream_is_read_by_its_header_like_its_raw_pcm_at_its_rate(server):
    audio = eight_khz_audio()
    raw = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    expected = posted(server, raw, f"rate=8000&{QUERY}")  # the PCM, its rate given
    assert expected[-1]["event"] == "end" and expected[-1]["windows"] > 2
    assert_same_stream(posted(server, wav_bytes(audio, 8000), QUERY), expected)  # was: 16 kHz, header as samples
    # a header's rate wins over the query's, as in `hfspeech stream` (a WAV piped with --rate)
    assert_same_stream(posted(server, wav_bytes(audio, 8000), f"rate=16000&{QUERY}"), expected)


def test_a_wav_sent_over_the_websocket_in_pieces_is_read_by_its_header(server):
    from websockets.sync.client import connect

    audio = eight_khz_audio()
    expected = posted(server, (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes(), f"rate=8000&{QUERY}")
    data = wav_bytes(audio, 8000)
    with connect(server.url.replace("http", "ws") + f"/stream?{QUERY}") as websocket:
        for start in range(0, 70, 7):  # the header itself split across messages
            websocket.send(data[start : start + 7])
        websocket.send(data[70:])
        websocket.send("end")
        received = [json.loads(message) for message in websocket]
    assert_same_stream(received, expected)


def test_a_wav_the_stream_cannot_read_is_a_400_naming_the_problem(server):
    audio = eight_khz_audio()
    (error,) = posted(server, wav_bytes(audio, 8000, "PCM_24"), QUERY)
    assert error["kind"] == "bad_audio" and "24 bits per sample" in error["error"]
    (error,) = posted(server, wav_bytes(audio, 8000)[:30], QUERY)  # cut inside its header
    assert error == {"error": "stream: the WAV header ended before its samples", "kind": "bad_audio"}
    flac = io.BytesIO()
    sf.write(flac, audio, 8000, format="FLAC")
    (error,) = posted(server, flac.getvalue(), QUERY)  # was: the compressed bytes read as PCM, noise classified
    assert error["kind"] == "bad_audio" and "FLAC audio, not raw PCM or WAV" in error["error"]
    tiny = posted(server, b"\x01\x00", QUERY)  # raw PCM shorter than a header's first word: one sample
    assert tiny[-1]["event"] == "end" and tiny[-1]["samples"] == 1


@pytest.mark.parametrize("given", ["missing folder", "a file"])
def test_an_eval_dir_that_is_not_a_folder_says_so_and_names_the_flag(tmp_path, capsys, given):
    from hfspeech.cli import main as cli
    from tests.conftest import save_random_baseline

    model = save_random_baseline(tmp_path / "cnn", "cnn", ["low", "high"], 0.5)
    eval_dir = tmp_path / ("held_out" if given == "missing folder" else "clips.txt")
    if given == "a file":  # neither a folder nor a manifest (those are read: test_held_out42)
        eval_dir.write_text("clip.wav low\n")
    out = tmp_path / "deploy"
    assert cli(["export", str(model), "--quantize", "int8", "--eval_dir", str(eval_dir), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    what = "not found" if given == "missing folder" else "not a folder"
    assert err == (f"error: --eval_dir {eval_dir}: {what}; expected an audio folder DIR/<label>/*.wav or a manifest "
                   "(.csv, .tsv, .json, .jsonl: path,label)")
    assert not out.exists()


def test_evaluate_takes_the_model_first_as_predict_does_and_helps_only_with_its_own_flags(trained_cnn, tone_folder,
                                                                                          tmp_path, capsys):
    from hfspeech.cli import main as cli

    flag, first = tmp_path / "flag", tmp_path / "first"
    assert cli(["evaluate", "--model", str(trained_cnn), "--data_dir", str(tone_folder), "--output_dir", str(flag)]) == 0
    assert cli(["evaluate", str(trained_cnn), "--data_dir", str(tone_folder), "--output_dir", str(first)]) == 0
    assert json.loads((first / "train_metrics.json").read_text())["accuracy"] == \
        json.loads((flag / "train_metrics.json").read_text())["accuracy"]  # was: "required: --model"
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli(["evaluate", "--help"])
    shown = capsys.readouterr().out
    assert "--test_file" in shown and "--window_seconds" in shown
    for refused in ("--noise_snr_db", "--mixup_alpha", "--oversample", "--max_eval_samples", "--streaming"):
        assert refused not in shown  # was: listed, then refused as a training flag when given
