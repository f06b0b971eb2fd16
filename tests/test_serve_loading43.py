"""A request that waits out --request_timeout while the model is still loading (audit MX: Whisper and AST servers
took 145-159 s to load on a busy machine) was answered 408 "a body that stopped arriving, or the server is
overloaded": it is a 503 `not_ready` saying the model is still loading, as /health says."""

from __future__ import annotations

import asyncio
import threading

from conftest import save_random_baseline
from hfspeech.inference.classifier import AudioClassifier


def test_a_request_timed_out_while_the_model_loads_says_so(tmp_path, monkeypatch):
    from starlette.testclient import TestClient

    from hfspeech.serve.app import ServeSettings, create_app

    model = save_random_baseline(tmp_path / "cnn", "cnn", ["a", "b"], 0.5, n_mels=16, conv_channels=[4])
    release, load = threading.Event(), AudioClassifier.from_pretrained
    monkeypatch.setattr(AudioClassifier, "from_pretrained",  # a slow load: held until the request has timed out
                        classmethod(lambda cls, *args, **kwargs: release.wait(30) and load(*args, **kwargs)))
    with TestClient(create_app(ServeSettings(model=str(model), request_timeout=0.5))) as client:
        answer = client.post("/", content=b"RIFF")
        release.set()
    assert (answer.status_code, answer.json()["kind"]) == (503, "not_ready"), answer.text[:300]
    assert "the model is still loading (0.5 s waited)" in answer.json()["error"]


def test_a_model_that_loads_after_its_server_stopped_is_kept_without_a_traceback(tmp_path):
    """The loading thread outlived the app (the test above: its client left before the model loaded) and told the
    closed event loop: "Exception in thread hfspeech-load ... RuntimeError: Event loop is closed"."""
    from hfspeech.serve.runner import ModelRunner

    runner = ModelRunner(str(save_random_baseline(tmp_path / "cnn", "cnn", ["a", "b"], 0.5, n_mels=16,
                                                  conv_channels=[4])))
    closed = asyncio.new_event_loop()
    closed.close()
    runner.loaded = asyncio.Event()
    runner._load(closed)
    assert runner.ready and runner.load_error is None
