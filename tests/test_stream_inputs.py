"""Bad input to the live paths (`/stream` over WebSocket and POST, `PcmFormat` under `hfspeech stream`):
each gets a one-line `{"error", "kind"}` naming what is wrong, never a 500, a cut connection, a traceback
in the server log, a stream held for ever, or a silently empty answer; the server keeps serving after all."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import requests

from hfspeech.inference.sources import PcmFormat
from hfspeech.serve.launcher import ServerProcess

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

PCM = (np.random.default_rng(0).normal(0, 0.1, 16000) * 32767).astype("<i2").tobytes()  # 1 s at 16 kHz


@pytest.fixture(scope="module")
def server(trained_cnn):
    with ServerProcess(trained_cnn, "--max-seconds", "3", "--request-timeout", "3") as running:
        yield running


def websocket_answers(server, query: str, sends: list) -> list:
    """What the server sends back (JSON), ending with the close code."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    answers = []
    with connect(server.url.replace("http", "ws") + "/stream?" + query) as websocket:
        try:  # the server may refuse (and close) before the last send; what it sent is still read
            for message in sends:
                websocket.send(message)
        except ConnectionClosed:
            pass
        try:
            while True:
                answers.append(json.loads(websocket.recv(timeout=20)))
        except ConnectionClosed:
            pass
    return answers + [websocket.close_code]


@pytest.mark.parametrize("query, named", [
    ("rate=1.5", "rate"), ("rate=1000000000000", "rate"), ("channels=1000", "channels"),
    ("window_seconds=inf", "window_seconds"), ("window_seconds=100000", "window_seconds"),
    ("threshold=2", "threshold"), ("threshold=nan", "threshold"), ("min_windows=1.5", "min_windows"),
    ("windows=maybe", "windows")])
def test_parameters_out_of_range_are_400_naming_them(server, query, named):
    """inf was a 500 (int(round(inf))), channels=1000 a 500 at the first chunk, a huge window a ring buffer of
    gigabytes, rate=1e12 and threshold=2 or nan a 200 with no windows or no events, windows=maybe a 200 without
    windows (read as false, where POST / answers `timeline=maybe` with a 400)."""
    answer = requests.post(f"{server.url}/stream?{query}", data=PCM, timeout=30)
    assert answer.status_code == 400 and answer.json()["kind"] == "bad_parameters"
    assert named in answer.json()["error"]
    error, code = websocket_answers(server, query, [PCM, "end"])
    assert (error["event"], error["kind"], code) == ("error", "bad_parameters", 1008)


def test_nan_samples_and_a_post_of_too_much_audio_are_refused_and_the_server_keeps_serving(server):
    nan = np.full(8000, np.nan, "<f4").tobytes()
    answer = requests.post(f"{server.url}/stream?format=f32le", data=nan, timeout=30)
    assert (answer.status_code, answer.json()["kind"]) == (400, "non_finite_audio")
    error, code = websocket_answers(server, "format=f32le", [nan, "end"])
    assert (error["kind"], code) == ("non_finite_audio", 1008) and "NaN" in error["error"]
    answer = requests.post(f"{server.url}/stream", data=PCM * 4, timeout=30)  # 4 s, over --max-seconds 3
    assert (answer.status_code, answer.json()["kind"]) == (413, "audio_too_long")
    *_, end, code = websocket_answers(server, "min_windows=1", [PCM, PCM, PCM, PCM, "end"])
    assert (end["event"], code) == ("end", 1000)  # a WebSocket answers as it goes: a live microphone may go on
    answers = websocket_answers(server, "", [PCM, "end"])
    assert answers[-2]["event"] == "end" and answers[-1] == 1000
    assert "Traceback" not in server.output()


def test_websocket_refuses_other_text_and_lets_an_idle_client_go(server):
    error, code = websocket_answers(server, "", ['{"type": "end"}'])
    assert (error["kind"], code) == ("bad_message", 1008) and "`end`" in error["error"]
    started = time.monotonic()
    error, code = websocket_answers(server, "", [])
    assert (error["kind"], code) == ("timeout", 1008) and time.monotonic() - started < 15


def test_pcm_format_refuses_rates_and_channels_no_stream_can_carry():
    """Checked before any audio (`hfspeech stream --rate/--channels` too): rate=1e12 resampled to nothing."""
    for rate, channels in ((10**12, 1), (16000, 1000)):
        with pytest.raises(ValueError, match="at most"):
            PcmFormat("s16le", rate, channels)
    assert PcmFormat("s16le", 768_000, 64).frame_bytes == 128


@pytest.mark.parametrize("change", ["truncate", "rotate"])
def test_following_a_file_that_is_truncated_or_rotated_stops_at_once_with_a_warning(tmp_path, change, caplog):
    """It used to read on from the old position (stitching another recording's tail onto this one) or wait
    out the idle timeout on a file nobody writes any more, and say nothing either way."""
    from hfspeech.inference.sources import follow_file

    path = tmp_path / "live.raw"
    path.write_bytes(PCM)
    chunks = follow_file(str(path), PcmFormat("s16le", 16000, 1), idle_timeout=5, poll_seconds=0.01)
    assert len(next(chunks)) == len(PCM) // 2  # all of it (one read); the next read waits for more
    if change == "truncate":
        path.write_bytes(b"")
    else:
        path.rename(tmp_path / "live.raw.1")
        path.write_bytes(PCM[:1000])
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="hfspeech.inference.sources"):
        rest = list(chunks)
    assert rest == [] and time.monotonic() - started < 2
    assert "truncated or replaced while followed" in caplog.text


def test_a_partial_frame_at_the_end_of_stdin_is_named_not_dropped_silently(caplog):
    import io

    from hfspeech.inference.sources import read_pcm

    with caplog.at_level("WARNING", logger="hfspeech.inference.sources"):
        chunks = list(read_pcm(io.BytesIO(PCM[:6] + b"\x01"), PcmFormat("s16le", 16000, 1)))
    assert [len(c) for c in chunks] == [3]
    assert "stdin ended with 1 bytes, less than a frame of 2" in caplog.text


def test_a_live_post_longer_than_the_request_timeout_is_answered(server):
    """1 s of audio sent as it is recorded, over 4.8 s, to a server whose --request-timeout is 3 s: the
    timeout bounds a pause, not the stream (the whole request's timeout answered 408, events lost)."""
    def live():
        for i in range(4):
            yield PCM[i * 8000 : (i + 1) * 8000]
            time.sleep(1.2)

    answer = requests.post(f"{server.url}/stream?min_windows=1", data=live(), timeout=30)
    assert answer.status_code == 200, answer.text
    assert json.loads(answer.text.splitlines()[-1])["samples"] == 16000


def test_a_stream_trickling_bytes_is_cut_at_max_seconds_plus_the_timeout():
    """Each pause is within the timeout, yet the whole may not outlast its longest audio in real time."""
    import asyncio

    from hfspeech.serve.errors import ApiError
    from hfspeech.serve.stream import within

    async def next_message_after_the_deadline():
        return await within(asyncio.sleep(10), 5.0, asyncio.get_running_loop().time() + 0.1)

    with pytest.raises(ApiError, match="--max_seconds") as refused:
        asyncio.run(next_message_after_the_deadline())
    assert (refused.value.status, refused.value.kind) == (408, "timeout")
