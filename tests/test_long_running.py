"""One process kept alive for hours or days: a notebook, a service on the Python API, `hfspeech serve`.

What such a process keeps must be bounded (caches, threads, file handles) and what it learnt about the world
once (is the Hub reachable?) must not outlive the world changing. Counts, not timings: each test fails on the
growth or the stale answer itself.
"""

from __future__ import annotations

import http.server
import threading
import tracemalloc

import numpy as np
import pytest
import torch
from huggingface_hub import constants

from hfspeech.inference.classifier import AudioClassifier
from hfspeech.models import loading as model_loading
from tests.test_long_audio import save_random_cnn

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.fixture
def local_endpoint():
    """An HTTP server on a loopback port (it answers HEAD with 501: reachable is all that counts)."""
    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_the_hub_probe_sees_the_network_come_back(monkeypatch, local_endpoint):
    """A service that started during an outage refused every uncached Hub id until it was restarted."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # a closed port: the outage
    monkeypatch.setattr(model_loading, "HUB_PROBE_SECONDS", 0.2, raising=False)
    model_loading._hub_reachable.cache_clear()
    try:
        assert model_loading.hub_unreachable()
        monkeypatch.setattr(constants, "ENDPOINT", local_endpoint)  # the network is back
        threading.Event().wait(0.5)
        assert not model_loading.hub_unreachable()
        assert model_loading._hub_reachable.cache_info().currsize == 1  # one answer kept, not one per period
    finally:
        model_loading._hub_reachable.cache_clear()


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> AudioClassifier:
    """A random CNN with 0.5-s windows (its weights do not matter: memory is what is measured)."""
    return AudioClassifier.from_pretrained(str(save_random_cnn(tmp_path_factory.mktemp("long") / "cnn")),
                                           device=torch.device("cpu"))


def test_a_waveform_in_memory_is_windowed_without_a_copy_per_window(classifier):
    """A notebook's hour-long recording scored with a fine hop held window / hop copies of it at once (10 here;
    at a hop of 0.01 s and a 1-s window, 100): numpy's allocations traced."""
    waveform = np.random.default_rng(0).standard_normal(20 * classifier.sampling_rate).astype(np.float32) * 0.1
    tracemalloc.start()
    try:
        scored = classifier.score_waveform(waveform, hop_seconds=0.05)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(scored.windows) == 391  # 0.5-s windows every 0.05 s, the last ending at the end
    assert peak < 5 * waveform.nbytes  # a batch's features (2.5x here); a copy of every window was 12x
