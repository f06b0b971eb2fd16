"""`hfspeech serve` against careless and hostile clients (the real server in a subprocess, no mocks of it):

- request parameters the JSON or the query string get wrong are refused by name, never read as another value;
- unknown routes and methods answer the server's JSON error shape (and `Allow` lists every method of `/`);
- a client that leaves before its answer does not leave its windows running;
- a live stream that ends part-way through a PCM frame says so in its last message, as `hfspeech stream` warns;
- the command's numeric flags are checked before anything starts.
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import subprocess
import sys
import time
import urllib.parse

import numpy as np
import pytest
import requests
import soundfile as sf

from hfspeech.cli import main as cli
from hfspeech.serve.launcher import ServerProcess
from tests.conftest import synth_clip

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def server(trained_cnn):
    # One window per model call: a long file takes long enough to leave half-way through.
    with ServerProcess(trained_cnn, "--max_batch_size", "1", "--request_timeout", "120") as running:
        yield running


@pytest.fixture(scope="module")
def clip_bytes() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, synth_clip("high", np.random.default_rng(0), 16000), 16000, format="WAV")
    return buffer.getvalue()


def post_parameters(url: str, audio: bytes, parameters) -> requests.Response:
    """`parameters` as a value, or as JSON text (`1e400`, which Python cannot write)."""
    text = parameters if isinstance(parameters, str) else json.dumps(parameters)
    body = f'{{"inputs": "{base64.b64encode(audio).decode()}", "parameters": {text}}}'
    return requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)


@pytest.mark.parametrize("parameters, message", [
    ({"top_k": 0}, "top_k must be at least 1, got 0"),  # was: the default 5 labels
    ({"top_k": True}, "top_k must be a whole number, got true"),  # was: 1 label
    ({"top_k": 2.7}, "top_k must be a whole number, got 2.7"),  # was: 2 labels
    ('{"top_k": 1e400}', "top_k must be a whole number, got Infinity"),  # was: 500 internal server error
    ({"topk": 2}, "unknown parameter 'topk': the known ones are top_k, function_to_apply, timeline, aggregate"),
    ({"timeline": "ture"}, "timeline must be true or false, got 'ture'"),  # was: no timeline
    ([], "`parameters` must be a JSON object"),  # was: read as no parameters
])
def test_json_parameters_that_do_not_fit_are_refused_by_name(server, clip_bytes, parameters, message):
    response = post_parameters(server.url, clip_bytes, parameters)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": message, "kind": "bad_parameters"}


def test_query_parameters_are_checked_as_json_ones_and_good_forms_still_work(server, clip_bytes):
    for query, message in [("topk=2", "unknown parameter 'topk'"), ("timeline=maybe", "timeline must be true or "
                           "false, got 'maybe'"), ("top_k=2.5", "top_k must be a whole number, got '2.5'")]:
        response = requests.post(f"{server.url}/?{query}", data=clip_bytes, timeout=30)
        assert response.status_code == 400 and response.json()["error"].startswith(message), query
    reference = requests.post(f"{server.url}/?top_k=2", data=clip_bytes, timeout=30).json()
    assert len(reference) == 2
    assert post_parameters(server.url, clip_bytes, {"top_k": 2.0}).json() == reference
    assert post_parameters(server.url, clip_bytes, {"top_k": "2", "timeline": False}).json() == reference
    assert requests.post(f"{server.url}/?top_k=2&timeline=0", data=clip_bytes, timeout=30).json() == reference
    # Base64 wrapped at 76 characters (`base64 clip.wav`, Python's encodebytes) is base64 too.
    wrapped = {"inputs": base64.encodebytes(clip_bytes).decode(), "parameters": {"top_k": 2}}
    assert requests.post(server.url, json=wrapped, timeout=30).json() == reference


def test_unknown_routes_and_methods_answer_json_errors(server):
    for method, path, status, kind in [("get", "/nope", 404, "not_found"), ("delete", "/", 405, "method_not_allowed"),
                                       ("put", "/health", 405, "method_not_allowed"),
                                       ("get", "/stream", 405, "method_not_allowed")]:
        response = requests.request(method, server.url + path, timeout=10)
        assert response.status_code == status, (method, path)
        assert response.headers["content-type"] == "application/json"
        assert set(response.json()) == {"error", "kind"} and response.json()["kind"] == kind
    refused = requests.delete(server.url + "/", timeout=10)
    assert set(refused.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}  # was "HEAD, GET": POST served too
    assert "allowed: POST" in requests.get(server.url + "/stream", timeout=10).json()["error"]


def batch_count(url: str) -> float:
    metrics = requests.get(f"{url}/metrics", timeout=10).text
    return float(re.search(r"^hfspeech_batch_size_count (\S+)$", metrics, re.M).group(1))


def post_and_leave_once_running(url: str, body: bytes) -> None:
    """POST `body` on a raw connection and close it as soon as the server runs the model for it: the client
    leaves with (nearly) all its windows still to run, whatever the machine's load. The test left after a quarter
    of a first answer's time, which under a changing load was anything from 0 to every window (797 ran once)."""
    before, address = batch_count(url), urllib.parse.urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as connection:
        connection.sendall(f"POST / HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: application/octet-stream"
                           f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        deadline = time.monotonic() + 120  # the model may still be loading
        while batch_count(url) == before and time.monotonic() < deadline:
            time.sleep(0.01)


def test_a_client_that_leaves_does_not_leave_its_windows_running(server, tmp_path):
    long = tmp_path / "long.flac"  # 300 s: 1199 windows of 0.5 s, one per model call
    sf.write(long, synth_clip("low", np.random.default_rng(1), 16000, 300.0), 16000)
    before = batch_count(server.url)
    post_and_leave_once_running(server.url, long.read_bytes())
    settled, count = time.monotonic(), batch_count(server.url)
    while time.monotonic() - settled < 2.0:  # until no model call for 2 s
        time.sleep(0.25)
        if (now := batch_count(server.url)) != count:
            settled, count = time.monotonic(), now
    assert 0 < count - before < 600, f"{count - before:.0f} of 1199 windows ran for a client that had left"
    assert 'hfspeech_errors_total{kind="client_closed"}' in requests.get(f"{server.url}/metrics", timeout=10).text


def test_a_stream_ending_inside_a_frame_says_so_as_hfspeech_stream_does(server, trained_cnn):
    from websockets.sync.client import connect

    audio = synth_clip("high", np.random.default_rng(2), 8000, 1.3)
    pcm = np.stack([audio, audio], 1)  # stereo: a frame is 4 bytes; 3 more than whole frames
    data = (np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes() + b"\x01\x02\x03"
    query = "rate=8000&channels=2&min_windows=1&windows=true"
    with connect(server.url.replace("http", "ws") + f"/stream?{query}") as websocket:
        for start in range(0, len(data), 1001):  # chunks that split frames
            websocket.send(data[start : start + 1001])
        websocket.send("end")
        received = [json.loads(message) for message in websocket]
    posted = [json.loads(line) for line in requests.post(f"{server.url}/stream?{query}", data=data, timeout=30)
              .text.splitlines()]
    command = subprocess.run([sys.executable, "-m", "hfspeech.cli", "stream", str(trained_cnn), "--rate", "8000",
                              "--channels", "2", "--min_windows", "1", "--windows"], input=data, capture_output=True,
                             timeout=120)
    printed = [json.loads(line) for line in command.stdout.decode().splitlines()]
    assert "ended with 3 bytes, less than a frame of 4" in command.stderr.decode()
    warning = "stream ended with 3 bytes, less than a frame of 4 (s16le, 2 channels): ignored"
    for ours in (received, posted):
        assert ours[-1] == {**printed[-1], "ignored_bytes": 3, "warning": warning}
        assert [(e["event"], e.get("start"), e.get("end")) for e in ours[:-1]] == \
            [(e["event"], e.get("start"), e.get("end")) for e in printed[:-1]]  # the tail window is classified too
    whole = data[:-3]
    with connect(server.url.replace("http", "ws") + f"/stream?{query}") as websocket:
        websocket.send(whole)
        websocket.send("end")
        assert "ignored_bytes" not in [json.loads(message) for message in websocket][-1]


@pytest.mark.parametrize("flag, value, message", [
    ("--max_batch_size", "0", "must be above 0, got 0"),  # was: a ValueError traceback
    ("--max_wait_ms", "inf", "must be 0 to 60000, got inf"),  # was: every request waited for a full batch
    ("--max_body_mb", "nan", "must be above 0, got nan"),  # was: a ValueError traceback
    ("--max_body_mb", "inf", "must be a finite number above 0, got inf"),  # was: an OverflowError traceback
    ("--top_k", "0", "must be above 0, got 0"),  # was: every request without top_k refused
    ("--request_timeout", "0", "must be above 0, got 0"),  # was: every request 408
    ("--workers", "-2", "must be above 0, got -2"),  # was: one process without a word
    ("--log_level", "loud", "invalid choice: 'loud'"),  # was: uvicorn's KeyError traceback
])
def test_numeric_flags_are_checked_before_the_server_starts(tmp_path, capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit_:
        cli(["serve", str(tmp_path), "--port", "0", flag, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err.splitlines()[-1] and "Traceback" not in err


def test_a_missing_model_folder_is_one_line_before_any_worker_starts(tmp_path):
    missing = tmp_path / "runs" / "typo"
    result = subprocess.run([sys.executable, "-m", "hfspeech.cli", "serve", str(missing), "--port", "0", "--workers",
                             "2"], capture_output=True, text=True, timeout=60)  # was: workers answering 503 for ever
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [f"error: {missing}: model folder not found"]


def test_a_stream_parameter_the_server_does_not_know_is_refused_by_name(server):
    response = requests.post(f"{server.url}/stream?min_window=3", data=b"\x00\x00" * 1600, timeout=30)
    assert response.status_code == 400 and response.json()["kind"] == "bad_parameters"
    assert "unknown parameter 'min_window'" in response.json()["error"]
    assert requests.post(f"{server.url}/stream?min_windows=3", data=b"\x00\x00" * 1600, timeout=30).ok
