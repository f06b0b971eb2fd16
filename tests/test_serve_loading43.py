"""A request that waits out --request_timeout while the model is still loading (audit MX: Whisper and AST servers
took 145-159 s to load on a busy machine) was answered 408 "a body that stopped arriving, or the server is
overloaded": it is a 503 `not_ready` saying the model is still loading, as /health says."""

from __future__ import annotations

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
