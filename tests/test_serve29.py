"""Serving leftovers (session 29): another site's page may not make the user's browser POST to (or open a WebSocket
on) a server bound beyond loopback either (CSRF against a server inside a private network); refusals for the API
key and for a busy server are counted by route and status as every other answer; and an upload torchcodec opens
without a sample rate is refused, not passed unmeasured.

The servers run in-process (`create_app`: Starlette's TestClient, or the ASGI calls themselves where two requests
must overlap) on a small random-weight CNN.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re

import numpy as np
import pytest
import soundfile as sf

from test_serve28 import model_folder  # noqa: F401  (the same tiny CNN, a fixture)

from hfspeech.serve.access import HostCheckMiddleware
from hfspeech.serve.app import ServeSettings, create_app
from hfspeech.serve.errors import ApiError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
INTERNAL = "http://10.0.0.5:8080"  # a server on a private network: its users' browsers reach it, other sites not
KEY = "s3cret-key"


@pytest.fixture(scope="module")
def clip() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.random.default_rng(0).uniform(-0.3, 0.3, 8000).astype(np.float32), 16000, format="WAV")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def internal(model_folder):
    """A server bound beyond loopback without --allowed_hosts (`run_server` keeps None: any Host answered)."""
    from starlette.testclient import TestClient

    settings = ServeSettings(model=str(model_folder), request_timeout=5.0, allowed_hosts=None)
    with TestClient(create_app(settings), base_url=INTERNAL) as running:
        assert running.get("/info").status_code == 200  # waits for the model
        yield running


@pytest.mark.parametrize("path", ["/", "/stream"])
@pytest.mark.parametrize("headers, page", [({"Origin": "http://evil.example"}, "the page 'http://evil.example'"),
                                           ({"Origin": "http://10.0.0.5.evil.example"}, "the page 'http://10.0.0.5"),
                                           ({"Origin": "null"}, "the page 'null'"),
                                           ({"Sec-Fetch-Site": "cross-site"}, "another site's page")])
def test_a_post_from_another_sites_page_is_refused_beyond_loopback_too(internal, clip, path, headers, page):
    """Any page the user opens could `fetch("http://10.0.0.5:8080/", {method: "POST", mode: "no-cors"})`."""
    answer = internal.post(path, content=clip, headers=headers)
    assert (answer.status_code, answer.json()["kind"]) == (403, "forbidden_host"), answer.text
    assert answer.json()["error"].startswith(f"a POST from {page}"), answer.text


@pytest.mark.parametrize("headers", [{}, {"Origin": INTERNAL}, {"Origin": "http://10.0.0.5:3000"},
                                     {"Sec-Fetch-Site": "same-origin", "Origin": "https://speech.example.com"},
                                     {"Host": "speech.lan", "Origin": "http://speech.lan:8080"},
                                     {"Host": "speech.lan", "Origin": "http://speech.lan", "Sec-Fetch-Site": "none"}])
def test_the_servers_own_page_a_proxy_and_clients_without_origin_still_classify(internal, clip, headers):
    """Its page by whatever name it was opened (any Host stays answered beyond loopback), a reverse proxy that
    rewrites Host (the browser says same-origin), curl, requests and the Hub's clients (no Origin)."""
    answer = internal.post("/", content=clip, headers=headers)
    assert answer.status_code == 200, answer.text
    assert {entry["label"] for entry in answer.json()} == {"a", "b"}


def test_a_websocket_from_another_sites_page_is_refused_beyond_loopback_and_its_own_page_streams(internal):
    from starlette.websockets import WebSocketDisconnect

    here = {"Host": "10.0.0.5:8080"}  # the TestClient's WebSockets say `testserver` whatever its base_url
    with pytest.raises(WebSocketDisconnect) as refused:
        with internal.websocket_connect("/stream", headers={**here, "Origin": "http://evil.example"}) as socket:
            socket.receive_text()
    assert refused.value.code == 1008 and "another site" in refused.value.reason, refused.value.reason
    for headers in ({"Origin": INTERNAL}, {}):
        with internal.websocket_connect("/stream", headers={**here, **headers}) as socket:
            socket.send_bytes(b"\0\0" * 16000)
            socket.send_text("end")
            assert "event" in socket.receive_json(), headers


@pytest.mark.parametrize("allowed, origin, refused", [(["*"], "http://evil.example", False), (["*"], "null", False),
                                                      (["10.0.0.5", "page.example.com"], "https://page.example.com",
                                                       False),
                                                      (["10.0.0.5", "page.example.com"], "http://evil.example", True),
                                                      (None, "http://evil.example", True)])
def test_allowed_hosts_let_a_deployments_own_other_pages_post(allowed, origin, refused):
    """A page served on another origin that POSTs to the server is let in by naming it (`*`: any page, as before)."""
    check = HostCheckMiddleware(None, allowed_hosts=allowed)
    problem = check.problem({b"host": "10.0.0.5:8080", b"origin": origin}, "POST")
    assert (problem is not None) == refused, problem


def asgi_scope(method: str, path: str, headers: dict) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
            "raw_path": path.encode(), "query_string": b"", "root_path": "", "scheme": "http",
            "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 40000),
            "headers": [(b"host", b"127.0.0.1:8080"), *((k.lower().encode(), v.encode()) for k, v in headers.items())]}


async def asgi_call(app, method: str, path: str, headers: dict, body: bytes = b"", gate=None) -> tuple[int, bytes]:
    """One request straight into the app; with `gate` (an asyncio.Event) its body arrives only once it is set."""
    sent, delivered = [], False

    async def receive():
        nonlocal delivered
        if delivered:
            await asyncio.Event().wait()  # nothing more: the client waits for its answer
        if gate is not None:
            await gate.wait()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    await app(asgi_scope(method, path, headers), receive, send)
    status = next(message["status"] for message in sent if message["type"] == "http.response.start")
    return status, b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")


def requests_counted(metrics_text: bytes) -> dict:
    """{(route, status): count} of `hfspeech_requests_total`."""
    found = re.findall(r'^hfspeech_requests_total\{route="([^"]*)",status="(\d+)"\} (\S+)$', metrics_text.decode(),
                       re.MULTILINE)
    return {(route, status): float(count) for route, status, count in found}


async def refusals_counted(model_folder, clip: bytes) -> tuple[dict, list[int]]:
    app = create_app(ServeSettings(model=str(model_folder), request_timeout=5.0, api_key=KEY, max_requests=1,
                                   allowed_hosts=[]))
    startup, started = asyncio.Queue(), asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, startup.get,
                                       started.put))
    assert (await started.get())["type"] == "lifespan.startup.complete"
    await app.state.runner.wait_ready()
    keyed = {"Authorization": f"Bearer {KEY}"}
    statuses = [(await asgi_call(app, "POST", "/", {}, clip))[0], (await asgi_call(app, "GET", "/nope", {}))[0]]
    gate = asyncio.Event()
    held = asyncio.create_task(asgi_call(app, "POST", "/", keyed, clip, gate))  # in flight, its body not yet here
    for _ in range(20):  # it enters the app (and counts as in flight) before its body is awaited
        await asyncio.sleep(0)
    statuses.append((await asgi_call(app, "POST", "/", keyed, clip))[0])
    gate.set()
    statuses.append((await held)[0])
    counted = requests_counted((await asgi_call(app, "GET", "/metrics", keyed))[1])
    await startup.put({"type": "lifespan.shutdown"})
    await lifespan
    return counted, statuses


def test_refusals_for_the_api_key_and_a_busy_server_are_counted_by_route_and_status(model_folder, clip):
    """They were counted by kind only, so a dashboard of requests by status never saw a 401 or a 503. An unknown
    path is counted under the one route `other` (a label per path a client makes up would grow without end)."""
    counted, statuses = asyncio.run(refusals_counted(model_folder, clip))
    assert statuses == [401, 401, 503, 200]
    assert {key: counted.get(key) for key in [("/", "401"), ("other", "401"), ("/", "503"), ("/", "200")]} == {
        ("/", "401"): 1, ("other", "401"): 1, ("/", "503"): 1, ("/", "200"): 1}, counted


@pytest.fixture
def torchcodec_without_rates(monkeypatch):
    """torchcodec reporting no sample rate for what it opens (`metadata.sample_rate` None, as its metadata allows):
    a fake of the dependency, the measuring code under test is real."""
    import torchcodec.decoders

    class RatelessDecoder(torchcodec.decoders.AudioDecoder):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.metadata = dataclasses.replace(self.metadata, sample_rate=None)

    monkeypatch.setattr(torchcodec.decoders, "AudioDecoder", RatelessDecoder)


def test_an_upload_measured_without_a_sample_rate_is_refused_not_passed(torchcodec_without_rates):
    """`ffmpeg_seconds` answered 0 s for it, so the length check passed an upload of any length (fail open)."""
    from test_serve_upload28b import torchcodec_webm

    from hfspeech.serve.audio_length import ffmpeg_seconds, refuse_audio_longer_than

    webm = torchcodec_webm(np.zeros(16000 * 30, dtype=np.float32), 16000)  # 30 s: libsndfile cannot measure it
    for measure in (lambda: ffmpeg_seconds(webm, 10.0), lambda: refuse_audio_longer_than(webm, 10.0)):
        with pytest.raises(ApiError) as refused:
            measure()
        assert (refused.value.status, refused.value.kind) == (400, "undecodable_audio")
        assert refused.value.message.startswith("upload: ") and "no sample rate" in refused.value.message
    assert ffmpeg_seconds(b"not audio at all", 10.0) == 0.0  # what torchcodec cannot open: decode_audio names it


def mp3_without_frame_count(seconds: float, rate: int, *quality: str) -> bytes:
    """LAME through ffmpeg with no Xing/Info header (`-write_xing 0`): no frame count, as some CBR encoders and
    streams write, so no header says how long it is."""
    from test_serve_upload28b import ffmpeg_encoded

    samples = np.random.default_rng(5).uniform(-0.3, 0.3, int(seconds * rate)).astype(np.float32)
    return ffmpeg_encoded(samples, rate, "-c:a", "libmp3lame", *quality, "-write_xing", "0", "-f", "mp3")


def declaring_wrong_lengths(mp3: bytes) -> bytes:
    """`mp3` (CBR 32 kbit/s, 16 kHz: MPEG-2 layer III, 72 * bitrate / rate bytes a frame) with every frame header
    saying 160 kbit/s: each declares five times its length, so a parser following the headers lands mid-frame."""
    crafted, position = bytearray(mp3), 0
    while position + 4 <= len(mp3):
        if mp3[position] == 0xFF and mp3[position + 1] & 0xE0 == 0xE0:
            assert mp3[position + 2] >> 4 == 4, "not the 32 kbit/s frame this expects"
            crafted[position + 2] = (mp3[position + 2] & 0x0F) | (14 << 4)  # index 14: 160 kbit/s
            position += 72000 * 32 // 16000 + (mp3[position + 2] >> 1 & 1)
        else:
            position += 1
    return bytes(crafted)


@pytest.fixture
def ffmpeg_decodes(monkeypatch) -> list:
    """The number of samples each of the server's bounded ffmpeg decodes gave (the real decode, observed)."""
    import hfspeech.serve.upload_audio as upload_audio

    shapes, decode = [], upload_audio.decode_with_ffmpeg

    def observed(*args, **kwargs):
        samples = decode(*args, **kwargs)
        shapes.append(None if samples is None else samples.shape[-1])
        return samples

    monkeypatch.setattr(upload_audio, "decode_with_ffmpeg", observed)
    return shapes


@pytest.mark.parametrize("name, mp3", [
    ("CBR", lambda: mp3_without_frame_count(60.0, 16000, "-b:a", "32k")),
    ("VBR", lambda: mp3_without_frame_count(60.0, 16000, "-q:a", "9")),
    # 60 s at 8 kHz (MPEG-2.5: 576 samples a frame), then 1 s at 48 kHz: the rate changes past the limit
    ("8 kHz then 48 kHz", lambda: mp3_without_frame_count(60.0, 8000) + mp3_without_frame_count(1.0, 48000)),
    ("frames declaring wrong lengths", lambda: declaring_wrong_lengths(mp3_without_frame_count(60.0, 16000, "-b:a",
                                                                                               "32k")))])
def test_a_long_mp3_without_a_frame_count_is_refused_having_decoded_a_second_past_the_limit(ffmpeg_decodes, name,
                                                                                            mp3):
    """Such an MP3 is decoded once, stopped by ffmpeg's timestamps 1 s past --max_seconds (no count first). An MP3
    has no timestamps of its own: ffmpeg's parser stamps each frame by the samples its header declares, the
    samples the decoder gives, so the stop holds (a 60-s upload: 11 s decoded, not 60). One ffmpeg cannot decode
    (frames whose headers declare the wrong length) is counted in blocks by libsndfile instead (`audio_length`)."""
    from hfspeech.serve.upload_audio import decode_upload

    audio = mp3()
    with pytest.raises(ApiError) as refused:
        decode_upload(audio, 16000, 10.0)
    assert (refused.value.status, refused.value.kind) == (413, "audio_too_long"), name
    assert ffmpeg_decodes and all(size is None or size <= 11.0 * 16000 for size in ffmpeg_decodes), ffmpeg_decodes


def test_a_short_mp3_without_a_frame_count_is_decode_audios_waveform(ffmpeg_decodes):
    from hfspeech.data.audio import decode_audio
    from hfspeech.serve.upload_audio import decode_upload

    audio = mp3_without_frame_count(9.0, 16000, "-b:a", "32k")
    served = decode_upload(audio, 16000, 10.0)
    assert len(ffmpeg_decodes) == 1, ffmpeg_decodes  # decoded once, within the limit
    np.testing.assert_array_equal(served, decode_audio({"path": None, "bytes": audio}, 16000))
