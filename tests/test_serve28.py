"""Serving hardening (session 28): another site's page may not make a loopback server run its model (a "simple"
cross-site POST needs no CORS preflight); refusals of a Host or an Origin are counted in /metrics; and one
large WebSocket message is fed to the streaming classifier in slices, with the events it gave whole.

The server runs in-process (Starlette's TestClient on `create_app`) on a small random-weight CNN, addressed
as 127.0.0.1 so that its Host is one a loopback server answers.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import soundfile as sf
from conftest import save_random_baseline

from hfspeech.serve.app import ServeSettings, create_app

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
HERE = "http://127.0.0.1:8080"


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return save_random_baseline(tmp_path_factory.mktemp("model"), "cnn", ["a", "b"], 0.5, n_mels=16,
                                conv_channels=[4, 8])


@pytest.fixture(scope="module")
def client(model_folder):
    from starlette.testclient import TestClient

    with TestClient(create_app(ServeSettings(model=str(model_folder), request_timeout=5.0, allowed_hosts=[])),
                    base_url=HERE) as running:
        assert running.get("/info").status_code == 200  # waits for the model
        yield running


@pytest.fixture(scope="module")
def clip() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.random.default_rng(0).uniform(-0.3, 0.3, 8000).astype(np.float32), 16000, format="WAV")
    return buffer.getvalue()


@pytest.mark.parametrize("path", ["/", "/stream"])
@pytest.mark.parametrize("headers, page", [({"Origin": "http://evil.example"}, "the page 'http://evil.example'"),
                                           ({"Origin": "null"}, "the page 'null'"),
                                           ({"Sec-Fetch-Site": "cross-site"}, "another site's page")])
def test_a_post_from_another_sites_page_is_refused_before_the_model_runs(client, clip, path, headers, page):
    """`fetch(server, {method: "POST", mode: "no-cors", body})` from any site: no preflight, and the model ran."""
    answer = client.post(path, content=clip, headers=headers)
    assert (answer.status_code, answer.json()["kind"]) == (403, "forbidden_host"), answer.text
    assert answer.json()["error"].startswith(f"a POST from {page}"), answer.text
    assert "--allowed_hosts adds one" in answer.json()["error"]


@pytest.mark.parametrize("headers", [{"Origin": HERE}, {"Origin": "http://localhost:3000"}, {},
                                     {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"},
                                     {"Origin": "https://speech.example.com", "Sec-Fetch-Site": "same-origin"}])
def test_the_servers_own_page_and_clients_without_origin_still_classify(client, clip, headers):
    """The page's own fetch (same origin; behind a proxy that rewrites Host its Origin is the public name, and the
    browser says same-origin), curl, requests and the Hub's clients (no Origin at all)."""
    answer = client.post("/", content=clip, headers=headers)
    assert answer.status_code == 200, answer.text
    assert {entry["label"] for entry in answer.json()} == {"a", "b"}


def test_another_sites_page_may_still_get_the_read_only_routes(client):
    """A GET runs no model and its answer stays unreadable to the page (no CORS): an `<img src>` or a link to
    the server from another site is not refused."""
    for path in ("/", "/health", "/info"):
        assert client.get(path, headers={"Origin": "http://evil.example"}).status_code == 200, path


def metric(client, line_start: str) -> float:
    """The value of the /metrics sample whose line starts with `line_start` (0 when there is none yet)."""
    text = client.get("/metrics").text
    found = re.search(rf"^{re.escape(line_start)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_refused_hosts_and_origins_are_counted_in_the_metrics_which_they_cannot_read(client, clip):
    by_status = 'hfspeech_requests_total{route="/metrics",status="403"}'
    posts = 'hfspeech_requests_total{route="/",status="403"}'
    by_kind = 'hfspeech_errors_total{kind="forbidden_host"}'
    before = {name: metric(client, name) for name in (by_status, posts, by_kind)}
    refused = client.get("/metrics", headers={"Host": "evil.example"})
    assert refused.status_code == 403 and "hfspeech_" not in refused.text, refused.text
    counted = {name: metric(client, name) - before[name] for name in (by_status, by_kind)}
    assert counted == {by_status: 1, by_kind: 1}, counted
    assert client.post("/", content=clip, headers={"Origin": "http://evil.example"}).status_code == 403
    counted = {name: metric(client, name) - before[name] for name in (posts, by_kind)}
    assert counted == {posts: 1, by_kind: 2}, counted


def live_stream(classifier, rate: int, channels: int = 1, window_seconds=None):
    from hfspeech.inference.sources import PcmDecoder, PcmFormat
    from hfspeech.inference.streaming import StreamingClassifier
    from hfspeech.serve.stream import LiveStream

    streamer = StreamingClassifier(classifier, window_seconds, None, input_rate=rate, min_windows=1)
    return LiveStream(PcmDecoder(PcmFormat("s16le", rate, channels)), streamer, True, 600.0), streamer


def speech_like_pcm(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    """Noise whose loudness rises and falls every few seconds (scores that change, events that fire), s16le."""
    rng = np.random.default_rng(3)
    frames = int(seconds * rate)
    loudness = 0.05 + 0.6 * (np.sin(np.arange(frames) / rate * 1.3) > 0)
    audio = rng.standard_normal((frames, channels)) * loudness[:, None] * 8000
    return audio.clip(-32768, 32767).astype("<i2")


@pytest.fixture(scope="module")
def classifier(model_folder):
    from hfspeech.inference.classifier import AudioClassifier

    return AudioClassifier.from_pretrained(str(model_folder))


@pytest.mark.parametrize("rate, channels, window_seconds", [(16000, 1, 1.0), (8000, 2, 1.0), (16000, 1, 0.25)])
def test_a_long_message_gives_the_events_and_windows_of_the_audio_classified_whole(classifier, rate, channels,
                                                                                   window_seconds):
    """In slices (8 kHz stereo: resampled and mixed slice by slice; 0.25-s windows: short slices) the
    answer is the one the streaming classifier gives the message's samples fed in one piece: the same windows,
    labels, events and counts. Scores agree to float rounding (measured: at most 1.2e-7): the model's result
    for a window moves by a rounding step with the size of the batch it runs in, as it did with where a client
    cut its messages."""
    from hfspeech.serve.stream import messages

    pcm = speech_like_pcm(70.3, rate, channels)
    live, _ = live_stream(classifier, rate, channels, window_seconds)
    assert 4 * live._slice_bytes() < pcm.nbytes  # several slices
    sliced = live.feed(pcm.tobytes()[:-1]) + live.feed(pcm.tobytes()[-1:]) + live.finish()  # a frame split too
    _, whole = live_stream(classifier, rate, channels, window_seconds)
    expected = messages(whole.feed(pcm) + whole.finish(), whole.id2label, True) + [whole.stats.to_dict()]
    assert any(message["event"] == "label" for message in expected)
    assert without_scores(sliced) == without_scores(expected)
    assert np.allclose(all_scores(sliced), all_scores(expected), rtol=0, atol=1e-6)


def without_scores(answer: list[dict]) -> list[dict]:
    return [{key: value for key, value in message.items() if key not in ("score", "scores")} for message in answer]


def all_scores(answer: list[dict]) -> np.ndarray:
    return np.array([score for message in answer for score in message.get("scores", [message.get("score", 0.0)])])


def peak_traced_bytes(classifier, seconds: float) -> int:
    """Python and numpy memory (tracemalloc; the model's own torch buffers are not traced) at its highest while
    one message of `seconds` of 16 kHz PCM is classified."""
    import tracemalloc

    live, _ = live_stream(classifier, 16000, window_seconds=1.0)  # a slice: 16 windows, 8 s
    data = speech_like_pcm(seconds, 16000).tobytes()
    tracemalloc.start()
    try:
        live.feed(data)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_memory_a_message_takes_does_not_grow_with_its_length(classifier):
    """One 14 MiB message (458 s at 16 kHz) raised the server's peak memory by 193 MB: it was decoded,
    converted, resampled, cut into windows and run as a whole. Four times the audio now takes about the memory."""
    short, long = peak_traced_bytes(classifier, 40), peak_traced_bytes(classifier, 160)
    assert long < 1.5 * short, (short, long)
