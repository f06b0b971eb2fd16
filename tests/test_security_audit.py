"""What an attacker, or an accident, can make hfspeech read, write, run or hold: the server's memory and
model thread under uploads and streams that are small as bytes but long as audio (or as windows), the API
key in the server's log, a crafted CTranslate2 folder given to the converter, and a pickled weights file
that would run code.

The server runs in-process (Starlette's TestClient on `create_app`) on a small random-weight CNN: what is
tested is the server's handling of the request, not the model's answer; the log test runs the real server.
"""

from __future__ import annotations

import io
import json
import struct
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from conftest import save_random_baseline

from hfspeech.serve.app import ServeSettings, create_app

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def encoded(samples: np.ndarray, rate: int, **kwargs) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """The server (audio limited to 3 s) on a random CNN."""
    from starlette.testclient import TestClient

    folder = save_random_baseline(tmp_path_factory.mktemp("model"), "cnn", ["a", "b"], 0.5, n_mels=16,
                                  conv_channels=[4, 8])
    with TestClient(create_app(ServeSettings(model=str(folder), max_seconds=3.0))) as running:
        assert running.get("/info").status_code == 200  # loaded before anything is measured
        yield running


# Each is a few kilobytes that decode to an hour or more (16 kHz float32: hundreds of megabytes).
BOMBS = {
    "WAV at 1 Hz": lambda: encoded(np.full(5000, 0.1, dtype=np.float32), 1, format="WAV", subtype="PCM_U8"),  # 5 KB, 5000 s
    "FLAC of silence": lambda: encoded(np.zeros(8000 * 3600, dtype=np.int16), 8000, format="FLAC"),  # 1 h
}


@pytest.mark.parametrize("name", BOMBS)
def test_a_small_upload_that_decodes_to_hours_is_refused_before_it_is_decoded(client, name):
    body = BOMBS[name]()
    assert len(body) < 200_000
    tracemalloc.start()
    try:
        answer = client.post("/", content=body, headers={"Content-Type": "application/octet-stream"})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (answer.status_code, answer.json()["kind"]) == (413, "audio_too_long"), answer.text
    assert "3 s" in answer.json()["error"]
    assert peak < 20e6, f"{peak / 1e6:.0f} MB held to refuse {len(body)} bytes"


def test_audio_within_the_limit_is_still_classified(client):
    rng = np.random.default_rng(0)
    for body in (encoded(rng.normal(0, 0.1, 8000 * 2).astype(np.float32), 8000, format="FLAC"),
                 encoded(rng.normal(0, 0.1, 16000 * 3).astype(np.float32), 16000, format="WAV")):  # exactly the limit
        answer = client.post("/", content=body)
        assert answer.status_code == 200, answer.text
        assert {entry["label"] for entry in answer.json()} == {"a", "b"}


def websocket_events(client, query: str, messages: list) -> list[dict]:
    """The JSON events the WebSocket /stream answers to `messages` (bytes, then text), up to its end or error."""
    events = []
    with client.websocket_connect(f"/stream?{query}") as websocket:
        for message in messages:
            (websocket.send_bytes if isinstance(message, bytes) else websocket.send_text)(message)
        while not events or events[-1].get("event") not in ("end", "error"):
            events.append(websocket.receive_json())
    return events


def test_a_websocket_message_that_holds_more_audio_than_the_limit_is_refused(client):
    """400 KB at `rate=1000` are 200 s of audio (at `rate=1`, refused now as a rate, 10 KB made 1.4 GB and a
    minute of the model's time). A message is held to --max_seconds, though the stream as a whole is not."""
    events = websocket_events(client, "format=s16le&rate=1000", [bytes(400_000), "end"])
    assert (events[-1]["event"], events[-1]["kind"]) == ("error", "audio_too_long"), events
    assert "one message holds 200 s" in events[-1]["error"]


def test_a_live_stream_longer_than_the_limit_in_small_messages_still_runs(client):
    second = (np.random.default_rng(1).normal(0, 0.1, 16000) * 32767).astype("<i2").tobytes()
    events = websocket_events(client, "format=s16le&rate=16000", [second] * 5 + ["end"])
    assert events[-1]["event"] == "end", events


# --- `hfspeech pretrained --from_ctranslate2 SRC`: a model.bin crafted or damaged is one line naming it.

def ctranslate2_string(text: str) -> bytes:
    data = text.encode() + b"\0"
    return struct.pack("<H", len(data)) + data


def ctranslate2_variable(name: str, shape: list[int], data: bytes, dtype: int = 0) -> bytes:
    return (ctranslate2_string(name) + struct.pack("<B", len(shape)) + b"".join(struct.pack("<I", d) for d in shape)
            + struct.pack("<BI", dtype, len(data)) + data)


def ctranslate2_folder(root, variables: list[bytes], aliases=(), tokenizer=None):
    """A faster-whisper folder whose model.bin holds `variables` (CTranslate2's binary layout, version 6)."""
    from hfspeech.models.whisper.convert_ctranslate2 import SPECIAL_TOKENS

    root.mkdir()
    model = struct.pack("<I", 6) + ctranslate2_string("WhisperSpec") + struct.pack("<II", 1, len(variables))
    model += b"".join(variables) + struct.pack("<I", len(aliases))
    model += b"".join(ctranslate2_string(alias) + ctranslate2_string(target) for alias, target in aliases)
    (root / "model.bin").write_bytes(model)
    (root / "config.json").write_text("{}")
    tokens = [{"content": token, "id": 50257 + i} for i, token in enumerate(SPECIAL_TOKENS)]
    (root / "tokenizer.json").write_text(tokenizer if tokenizer is not None else json.dumps({"added_tokens": tokens}))
    return root


FLOAT = struct.pack("<f", 1.0)
CRAFTED_CTRANSLATE2 = {  # what the folder holds -> (its variables, aliases, tokenizer.json), what the line says
    "a shape far larger than its bytes": ([ctranslate2_variable("encoder/conv1/weight", [100000, 100000, 3], FLOAT)],
                                          (), None, "declares shape [100000, 100000, 3] but holds 4 bytes"),
    "an alias to nothing": ([ctranslate2_variable("x", [1], FLOAT)], [("encoder/num_heads", "nope")], None,
                            "alias 'encoder/num_heads' names 'nope'"),
    "no Whisper weights": ([ctranslate2_variable("x", [1], FLOAT)], (), None, "weights do not match Whisper's layout"),
    "a name that is not text": ([struct.pack("<H", 3) + b"\xff\xfe\0"], (), None, "is not UTF-8 text"),
    "a conv1 of another rank": ([ctranslate2_variable("encoder/conv1/weight", [1], FLOAT)], (), None,
                                "weights do not match Whisper's layout"),
    "a tokenizer.json that is not one": ([], (), "[]", "tokenizer.json: not a Hugging Face tokenizer.json"),
}


@pytest.mark.parametrize("name", CRAFTED_CTRANSLATE2)
def test_a_crafted_ctranslate2_folder_is_one_line_naming_the_file(name, tmp_path, capsys):
    from hfspeech.cli import main as cli

    variables, aliases, tokenizer, expected = CRAFTED_CTRANSLATE2[name]
    source = ctranslate2_folder(tmp_path / "ct2", variables, aliases, tokenizer)
    assert cli(["pretrained", "--from_ctranslate2", str(source), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(source) in err and expected in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# --- Loading a model folder someone else made.

class _OpensAFile:
    """Unpickled, it would create `path`: the stand-in for a payload that runs code."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_pickled_weights_file_with_code_in_it_is_refused_as_such_and_not_run(tmp_path, capsys):
    import torch
    from safetensors.torch import load_file

    from hfspeech.cli import main as cli

    folder = save_random_baseline(tmp_path / "model", "cnn", ["a", "b"], 0.5, n_mels=16, conv_channels=[4, 8])
    weights = load_file(folder / "model.safetensors")
    marker = tmp_path / "ran"
    torch.save({**weights, "payload": _OpensAFile(str(marker))}, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    clip = tmp_path / "clip.wav"
    sf.write(clip, np.zeros(16000, dtype=np.float32), 16000)
    assert cli(["predict", str(folder), str(clip)]) != 0
    err = capsys.readouterr().err.strip()
    assert not marker.exists()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    # It used to read "corrupt or truncated weights file": a file made to run code, reported as damage.
    assert f"{folder / 'pytorch_model.bin'}: holds Python objects besides tensors (GLOBAL io.open)" in err, err


def test_the_api_key_of_a_websocket_is_not_written_to_the_server_log(tmp_path):
    """A browser's WebSocket sends the key as `?api_key=`; uvicorn logs each request line with its query."""
    from websockets.sync.client import connect

    from hfspeech.serve.launcher import ServerProcess

    key = "hfspeech-test-key-0123456789"
    folder = save_random_baseline(tmp_path / "model", "cnn", ["a", "b"], 0.5, n_mels=16, conv_channels=[4, 8])
    with ServerProcess(folder, "--log_level", "info", env={"HFSPEECH_API_KEY": key}) as server:
        with connect(server.url.replace("http", "ws") + f"/stream?api_key={key}") as websocket:
            websocket.send("end")
            assert json.loads(websocket.recv(timeout=60))["event"] == "end"
        log = server.output()
    assert "/stream?api_key=<redacted>" in log, log
    assert key not in log, log


def test_a_stream_hop_too_short_to_serve_is_refused_by_name(client):
    """One model call per hop, on the model thread every request shares: 5 s of audio at `hop_seconds=0.0001`
    held it for more than 10 minutes."""
    pcm = (np.random.default_rng(2).normal(0, 0.1, 16000) * 32767).astype("<i2").tobytes()
    answer = client.post("/stream?hop_seconds=0.001", content=pcm)
    assert (answer.status_code, answer.json()["kind"]) == (400, "bad_parameters"), answer.text[:300]
    assert "hop_seconds must be at least 0.02" in answer.json()["error"]
    assert client.post("/stream?hop_seconds=0.25", content=pcm).status_code == 200
