"""Bad samples part-way through a live stream (session 42, helper SN).

A NaN at 15 s of a float WAV piped into `hfspeech stream` printed `error: chunk: audio contains NaN or infinite
samples` right after the `label` lines: no `ended` line for the open events, no counts line, and "chunk" named
nothing the user knows. Now the stream ends before the refused chunk as it ends at the end of the input (`ended`
lines, then the counts), then the one-line error names the source and the time of the bad sample; exit code 2.
"""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
import soundfile as sf

from hfspeech.errors import UsageError
from hfspeech.inference.classifier import AudioClassifier
from hfspeech.inference.streaming import StreamingClassifier
from tests.conftest import run_cli_output, save_random_baseline

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

RATE = 16000
LABELS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream_errors") / "cnn"
    return save_random_baseline(folder, "cnn", LABELS, 0.5, n_mels=16, conv_channels=[4], max_length_seconds=0.5)


def tone_with_nan(seconds: float, nan_at: float) -> np.ndarray:
    samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * RATE)) / RATE)).astype(np.float32)
    samples[int(nan_at * RATE)] = np.nan
    return samples


def run_stream(args: list[str], stdin: bytes, capsys, monkeypatch, tmp_path):
    """`hfspeech stream ARGS` in this process, with `stdin` piped in (a file, read as a pipe is)."""
    source = tmp_path / "stdin.bin"
    source.write_bytes(stdin)
    with source.open("rb") as handle:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(handle))
        return run_cli_output(["stream", *args], capsys)


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def assert_closed_then_refused(code: int, out: str, err: str, source: str) -> None:
    lines = [json.loads(line) for line in out.splitlines()]
    fired = sorted(line["label"] for line in lines if line["event"] == "label")
    ended = sorted(line["label"] for line in lines if line["event"] == "ended")
    assert fired == ended == LABELS  # threshold 0: every label fired at the first window, open until the NaN
    assert lines[-1]["event"] == "end" and lines[-1]["events"] == 3
    assert 0 < lines[-1]["samples"] <= 2.0 * RATE  # the stream ended before the refused chunk
    assert code == 2 and err.splitlines()[-1] == f"error: {source} at 2.0 s: audio contains NaN or infinite samples"


def test_a_nan_on_stdin_closes_the_open_events_prints_the_counts_then_names_stdin_and_the_time(
        model, capsys, monkeypatch, tmp_path):
    wav = wav_bytes(tone_with_nan(3.0, nan_at=2.0), RATE)
    code, out, err = run_stream([str(model), "--min_windows", "1", "--threshold", "0"], wav, capsys, monkeypatch,
                                tmp_path)
    assert_closed_then_refused(code, out, err, "stdin")


def test_a_nan_in_a_followed_file_names_the_file_and_the_time(model, capsys, tmp_path):
    path = tmp_path / "recording.wav"
    path.write_bytes(wav_bytes(tone_with_nan(3.0, nan_at=2.0), RATE))
    code, out, err = run_cli_output(["stream", str(model), "--min_windows", "1", "--threshold", "0", "--follow",
                                     str(path), "--idle_timeout", "0"], capsys)
    assert_closed_then_refused(code, out, err, str(path))


def test_fewer_frames_than_one_sample_at_the_models_rate_are_said_to_have_arrived(model, capsys, monkeypatch,
                                                                                  tmp_path):
    """5 samples of a 384 kHz WAV: "no audio arrived: stdin ended before its first sample" was untrue."""
    wav = wav_bytes(np.full(5, 0.1, np.float32), 384000)
    code, out, err = run_stream([str(model)], wav, capsys, monkeypatch, tmp_path)
    assert code == 0 and json.loads(out.splitlines()[-1])["samples"] == 0
    assert "no audio arrived" not in err
    assert "warning: too little audio: stdin gave 5 sample(s) at 384000 Hz" in err and "16000 Hz" in err


def test_feed_names_the_time_of_the_first_bad_frame_at_the_input_rate_and_the_stream_can_still_finish(model):
    stream = StreamingClassifier(AudioClassifier.from_pretrained(str(model)), sampling_rate=8000, threshold=0.0,
                                 offsets=True, source="mic")
    assert stream.feed(np.zeros((8000, 2), np.float32) + 0.1)  # 1 s of stereo: windows, events fired
    chunk = np.full((8000, 2), 0.1, np.float32)
    chunk[4000, 1] = np.inf  # one channel of the frame at 1.5 s
    with pytest.raises(UsageError, match=r"^mic at 1\.5 s: audio contains NaN or infinite samples$"):
        stream.feed(chunk)
    with pytest.raises(UsageError, match=r"^stream at 0\.0 s: .*channels-first"):  # the chunk's start by default
        StreamingClassifier(stream.classifier).feed(np.zeros((2, 100), np.float32))
    stream.finish()
    assert sorted(event.label for event in stream.ended_at_finish) == LABELS
    assert stream.stats.samples == RATE  # the refused chunk left the stream as it was


def test_serve_stream_refusal_names_the_upload_and_time_not_a_chunk(model):
    from starlette.testclient import TestClient

    from hfspeech.serve.app import ServeSettings, create_app

    pcm = tone_with_nan(1.0, nan_at=0.5).astype("<f4").tobytes()
    with TestClient(create_app(ServeSettings(model=str(model), request_timeout=5.0))) as client:
        answer = client.post(f"/stream?format=f32le&rate={RATE}", content=pcm)
    assert (answer.status_code, answer.json()["kind"]) == (400, "non_finite_audio"), answer.text[:300]
    assert "upload at 0.5 s: audio contains NaN" in answer.json()["error"] and "chunk" not in answer.json()["error"]
