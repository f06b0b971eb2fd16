"""`hfspeech serve`, the real server in a subprocess on a free loopback port (no mocks of it).

- the Hub's task contract: `InferenceClient.audio_classification` (raw bytes) and the JSON/base64 form give
  `hfspeech predict`'s labels and scores on the same files, in PyTorch and ONNX, single- and multi-label;
- long files are windowed as in `predict` (`?timeline=true`: the same windows and scores);
- every kind of bad input gets its 4xx and a one-line JSON error without a traceback or a path, and the
  server then still answers correctly; the API key guards every route but /health and the page;
- /health, /info and /metrics say what they should.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError

from hfspeech.cli import main as cli
from hfspeech.export import export_onnx
from hfspeech.serve.launcher import ServerProcess
from tests.conftest import synth_clip
from tests.test_data import write_bad_files
from tests.test_long_audio import multi_label_cnn  # noqa: F401  (a fixture: the trained CNN made multi-label)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

LIMITS = ["--max-body-mb", "1", "--max-seconds", "20", "--request-timeout", "4"]
API_KEY = "test-key-123"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    """Files of each class at several rates, stereo, FLAC, and a 3 s file (several 0.5 s windows)."""
    folder, rng = tmp_path_factory.mktemp("serve_clips"), np.random.default_rng(7)
    specs = [("low", 16000, 1, "wav"), ("high", 8000, 1, "wav"), ("noise", 44100, 1, "wav"),
             ("high", 16000, 2, "wav"), ("low", 22050, 1, "flac"), ("noise", 16000, 1, "flac")]
    paths = []
    for i, (kind, rate, channels, extension) in enumerate(specs):
        clip = synth_clip(kind, rng, rate)
        paths.append(folder / f"{i}_{kind}_{rate}.{extension}")
        sf.write(paths[-1], np.stack([clip, clip * 0.5], 1) if channels == 2 else clip, rate)
    long = np.concatenate([synth_clip(kind, rng, 16000, 1.0) for kind in ("low", "high", "noise")])
    paths.append(folder / "long.wav")
    sf.write(paths[-1], long, 16000)
    return paths


@pytest.fixture(scope="module")
def server(trained_cnn):
    with ServerProcess(trained_cnn, *LIMITS) as running:
        yield running


@pytest.fixture(scope="module")
def onnx_server(trained_cnn, tmp_path_factory):
    export = export_onnx(trained_cnn, tmp_path_factory.mktemp("serve_onnx") / "onnx")
    with ServerProcess(export.parent) as running:
        yield running


@pytest.fixture(scope="module")
def keyed_multi_label_server(multi_label_cnn):  # noqa: F811
    with ServerProcess(multi_label_cnn, env={"HFSPEECH_API_KEY": API_KEY}) as running:
        yield running


def predict_json(model, files, top_k: int = 3) -> list[dict]:
    """`hfspeech predict MODEL FILES --json`, one dict per file."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli(["predict", str(model), *map(str, files), "--json", "--top-k", str(top_k)]) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def assert_same_answer(answer, expected: dict) -> None:
    assert [a["label"] for a in answer] == [p["label"] for p in expected["predictions"]]
    assert [a["score"] for a in answer] == pytest.approx([p["score"] for p in expected["predictions"]], abs=1e-4)


def post_json(url: str, path: Path, parameters: dict, **kwargs):
    body = {"inputs": base64.b64encode(path.read_bytes()).decode(), "parameters": parameters}
    return requests.post(url, json=body, timeout=30, **kwargs)


@pytest.mark.parametrize("backend", ["pytorch", "onnx"])
def test_inference_client_and_json_form_give_predicts_answer(backend, request, trained_cnn, clips):
    server = request.getfixturevalue("server" if backend == "pytorch" else "onnx_server")
    client = InferenceClient(model=server.url)
    expected = predict_json(trained_cnn, clips, top_k=3)
    for path, reference in zip(clips, expected):
        raw = client.audio_classification(str(path), top_k=3 if path.suffix == ".flac" else None)
        assert_same_answer([{"label": e.label, "score": e.score} for e in raw][:3], reference)
        response = post_json(server.url, path, {"top_k": 3, "function_to_apply": "softmax"})
        assert response.status_code == 200, response.text
        assert_same_answer(response.json(), reference)
    assert requests.get(f"{server.url}/info", timeout=10).json()["backend"] == backend


def test_long_file_timeline_has_predicts_windows(server, trained_cnn, clips, tmp_path):
    long = clips[-1]
    assert cli(["predict", str(trained_cnn), str(long), "--timeline", str(tmp_path), "--top-k", "3"]) == 0
    reference = json.loads((tmp_path / "long.timeline.json").read_text())
    answer = requests.post(f"{server.url}/?timeline=true&top_k=3", data=long.read_bytes(),
                           headers={"Content-Type": "audio/wav"}, timeout=30).json()
    assert answer["num_windows"] == reference["num_windows"] == len(answer["windows"]) > 4
    for ours, theirs in zip(answer["windows"], reference["windows"]):
        assert (ours["start"], ours["end"], ours["labels"]) == (theirs["start"], theirs["end"], theirs["labels"])
        assert ours["scores"] == pytest.approx(theirs["scores"], abs=1e-4)
    assert_same_answer(answer["predictions"], reference)
    # The windows follow the audio: low, then high, then noise.
    assert [w["labels"][0] for w in answer["windows"]][::4][:3] == ["low", "high", "noise"]


def test_multi_label_answers_sigmoid_scores_thresholds_and_active_labels(keyed_multi_label_server,
                                                                         multi_label_cnn, clips):  # noqa: F811
    url, auth = keyed_multi_label_server.url, {"Authorization": f"Bearer {API_KEY}"}
    expected = predict_json(multi_label_cnn, clips[:3], top_k=3)
    client = InferenceClient(model=url, token=API_KEY)
    for path, reference in zip(clips[:3], expected):
        answer = client.audio_classification(str(path), top_k=3)
        assert_same_answer([{"label": e.label, "score": e.score} for e in answer], reference)
        by_label = {e.label: e for e in answer}
        assert {label for label, e in by_label.items() if e.active} == set(reference["active_labels"])
        assert (by_label["high"].threshold, by_label["noise"].threshold, by_label["low"].threshold) == (0.9, 0.2, 0.5)
    scores = [e["score"] for e in requests.post(url, data=clips[0].read_bytes(), headers=auth, timeout=30).json()]
    assert abs(sum(scores) - 1) > 0.05  # sigmoids, not a softmax


def test_api_key_guards_every_route_but_health_and_the_page(keyed_multi_label_server, clips):
    url = keyed_multi_label_server.url
    for method, path in [("post", "/"), ("get", "/info"), ("get", "/metrics"), ("post", "/stream")]:
        response = getattr(requests, method)(f"{url}{path}", data=b"x" if method == "post" else None, timeout=10)
        assert response.status_code == 401 and response.json()["kind"] == "unauthorized", path
        wrong = getattr(requests, method)(f"{url}{path}", headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401, path
    assert requests.get(f"{url}/health", timeout=10).json() == {"status": "ok"}
    assert requests.get(f"{url}/", timeout=10).status_code == 200
    with pytest.raises(HfHubHTTPError, match="401"):
        InferenceClient(model=url).audio_classification(str(clips[0]))
    ok = requests.get(f"{url}/info", headers={"X-API-Key": API_KEY}, timeout=10)
    assert ok.status_code == 200 and ok.json()["problem_type"] == "multi_label_classification"


def bad_requests(folder: Path) -> list[tuple[str, dict, int, str]]:
    """(name, requests.post keyword arguments, status, error kind) for each kind of bad input."""
    kinds = {"empty.wav": "empty_audio", "corrupt.wav": "undecodable_audio", "notes.mp3": "undecodable_audio",
             "zero.wav": "empty_audio", "nan.wav": "non_finite_audio", "truncated.wav": "undecodable_audio"}
    cases = [(name, {"data": (folder / name).read_bytes()}, 400, kind) for name, kind in kinds.items()]
    rng = np.random.default_rng(0)
    too_long = io.BytesIO()
    sf.write(too_long, synth_clip("low", rng, 8000, 25.0), 8000, format="FLAC")  # 25 s, well under 1 MB
    return cases + [
        ("oversize body", {"data": b"\0" * (1024 * 1024 + 1)}, 413, "body_too_large"),
        ("audio over the duration limit", {"data": too_long.getvalue()}, 413, "audio_too_long"),
        ("wrong content type", {"data": b"hello", "headers": {"Content-Type": "text/plain"}}, 415,
         "unsupported_content_type"),
        ("image", {"data": b"\x89PNG\r\n", "headers": {"Content-Type": "image/png"}}, 415, "unsupported_content_type"),
        ("bad JSON", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "bad_json"),
        ("JSON without inputs", {"json": {"parameters": {}}}, 400, "bad_json"),
        ("bad base64", {"json": {"inputs": "%%%not base64"}}, 400, "bad_base64"),
        ("bad top_k", {"json": {"inputs": "AAAA", "parameters": {"top_k": "many"}}}, 400, "bad_parameters"),
        ("bad function", {"json": {"inputs": "AAAA", "parameters": {"function_to_apply": "relu"}}}, 400,
         "bad_parameters"),
        ("truncated WAV header", {"data": b"RIFF\x24\x00\x00\x00WAVEfmt "}, 400, "undecodable_audio"),
    ]


def assert_clean_error(response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "kind"} and body["kind"] == kind
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    assert not any(marker in body["error"] for marker in ("/tmp", "/work", "/home", ".py", "site-packages"))


def test_every_bad_input_gets_its_4xx_and_the_server_keeps_serving(server, trained_cnn, clips, tmp_path):
    reference = predict_json(trained_cnn, clips[:1])[0]
    write_bad_files(tmp_path)
    for name, kwargs, status, kind in bad_requests(tmp_path):
        assert_clean_error(requests.post(server.url, timeout=30, **kwargs), status, kind)
        good = requests.post(f"{server.url}/?top_k=3", data=clips[0].read_bytes(), timeout=30)
        assert good.status_code == 200, f"after {name}: {good.text}"
        assert_same_answer(good.json(), reference)
    metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    for kind in ("empty_audio", "undecodable_audio", "non_finite_audio", "body_too_large", "unsupported_content_type"):
        assert f'hfspeech_errors_total{{kind="{kind}"}}' in metrics


def raw_request(url: str, head: bytes, body: bytes, close_write: bool, wait: float = 10.0) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as connection:
        connection.sendall(head + body)
        if close_write:
            connection.shutdown(socket.SHUT_WR)
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def test_truncated_and_stalled_uploads_end_cleanly(server, trained_cnn, clips):
    reference = predict_json(trained_cnn, clips[:1])[0]
    body = clips[0].read_bytes()
    head = f"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: audio/wav\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    # The client closes its side halfway through the body: no answer can reach it, the server carries on.
    raw_request(server.url, head, body[: len(body) // 2], close_write=True)
    # The client stops sending and waits: 408 at the request timeout (4 s here).
    started = time.monotonic()
    answer = raw_request(server.url, head, body[: len(body) // 2], close_write=False)
    assert answer.startswith(b"HTTP/1.1 408") and b'"kind":"timeout"' in answer
    assert 3.5 < time.monotonic() - started < 9
    good = requests.post(f"{server.url}/?top_k=3", data=body, timeout=30)
    assert_same_answer(good.json(), reference)


def test_health_info_and_metrics(server, trained_cnn):
    assert requests.get(f"{server.url}/health", timeout=10).json() == {"status": "ok"}
    info = requests.get(f"{server.url}/info", timeout=10).json()
    config = json.loads((trained_cnn / "config.json").read_text())
    assert info["labels"] == [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    assert (info["sampling_rate"], info["backend"], info["window_seconds"]) == (16000, "pytorch", 0.5)
    assert info["revision"].startswith("sha256:") and len(info["revision"]) == len("sha256:") + 12
    requests.post(server.url, data=b"", timeout=10)
    metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    assert 'hfspeech_requests_total{route="/",status="200"}' in metrics
    assert 'hfspeech_request_seconds_bucket{le="0.5",route="/"}' in metrics
    assert "hfspeech_batch_size_count" in metrics and 'hfspeech_errors_total{kind="empty_audio"}' in metrics


def test_a_model_that_does_not_load_stops_the_server_with_a_one_line_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    result = subprocess.run([sys.executable, "-m", "hfspeech.cli", "serve", str(tmp_path), "--port", "0",
                             "--log-level", "warning"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path}: no model weights "
                                                  "(model.safetensors) in the folder"]


def test_a_port_in_use_or_out_of_range_is_one_line_before_the_model_loads(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # No model at all: the address is checked first, so the error is about the port.
        assert cli(["serve", str(tmp_path / "absent"), "--port", str(port)]) == 2
    assert capsys.readouterr().err.strip() == (f"error: --host 127.0.0.1 --port {port}: cannot listen there "
                                               "(Address already in use)")
    with pytest.raises(SystemExit) as exit_:
        cli(["serve", str(tmp_path / "absent"), "--port", "99999"])
    assert exit_.value.code == 2 and "--port: must be 0 to 65535, got 99999" in capsys.readouterr().err
