"""A server under long use (session 38's audit): out of file descriptors it logged 20 MB of tracebacks in 30 s,
SIGTERM waited for the slowest request (up to 630 s), cancelled requests kept their batch turns, and every
start-up counted the readiness probe's 503s as errors."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request

import pytest

from hfspeech.errors import HfspeechError
from hfspeech.serve.app import ServeSettings, run_server
from hfspeech.serve.batching import DynamicBatcher
from hfspeech.serve.launcher import free_port, health_status

resource = pytest.importorskip("resource")  # no file-descriptor limits to raise on Windows


def loading_for_ever(monkeypatch) -> threading.Event:
    """The model "loads" until the returned event is set, then fails: /health answers 503 meanwhile."""
    release = threading.Event()

    def load(*args, **kwargs):
        release.wait()
        raise HfspeechError("the test's model never loads")

    monkeypatch.setattr("hfspeech.serve.runner.AudioClassifier.from_pretrained", load)
    return release


def wait_until_answering(url: str) -> None:
    deadline = time.monotonic() + 60
    while health_status(url) is None:
        assert time.monotonic() < deadline, f"{url} never answered"
        time.sleep(0.05)


def test_the_server_raises_the_soft_open_files_limit_while_it_runs_and_puts_it_back(tmp_path, monkeypatch):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 512:
        pytest.skip(f"the hard limit ({hard}) leaves no room to raise the soft one")
    seen = []

    def load(*args, **kwargs):
        seen.append(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        raise HfspeechError("the test's model does not load")

    monkeypatch.setattr("hfspeech.serve.runner.AudioClassifier.from_pretrained", load)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        assert run_server(ServeSettings(model=str(tmp_path)), port=free_port(), log_level="error")
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (256, hard)  # the process as it was found
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert seen and seen[0] == min(hard if hard != resource.RLIM_INFINITY else 65536, 65536)


OUT_OF_FDS_SERVER = textwrap.dedent("""
    import os, resource, sys, threading
    from hfspeech.errors import HfspeechError
    from hfspeech.serve import runner
    from hfspeech.serve.app import ServeSettings, run_server
    def load(*args, **kwargs):
        threading.Event().wait()
    runner.AudioClassifier.from_pretrained = load
    most = len(os.listdir("/dev/fd")) + 24  # a few to spare; soft and hard, so nothing to raise
    resource.setrlimit(resource.RLIMIT_NOFILE, (most, most))
    run_server(ServeSettings(model=sys.argv[1]), port=int(sys.argv[2]), log_level="warning")
""")


def test_running_out_of_file_descriptors_is_one_line_not_a_flood_of_tracebacks(tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-c", OUT_OF_FDS_SERVER, str(tmp_path), str(port)],
                                  stdout=out, stderr=subprocess.STDOUT)
    connections = []
    try:
        wait_until_answering(f"http://127.0.0.1:{port}")
        for _ in range(100):  # more than its spare descriptors: the rest wait in the backlog, accept fails
            connections.append(socket.create_connection(("127.0.0.1", port)))
        time.sleep(2)  # asyncio retries the accept every second, up to 2048 times each
    finally:
        for connection in connections:
            connection.close()
        server.terminate()
        server.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[:2000]
    lines = [line for line in text.splitlines() if "too many open connections" in line]
    assert 1 <= len(lines) <= 2, text[:2000]
    assert "raise ulimit -n or lower --max_requests" in lines[0]


def test_the_accept_error_is_counted_between_lines_and_the_filter_leaves_with_the_server(caplog):
    from hfspeech.serve.limits import quiet_accept_errors

    now = [0.0]
    loop = asyncio.new_event_loop()
    context = {"message": "socket.accept() out of system resource",
               "exception": OSError(errno.EMFILE, "Too many open files")}
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            with quiet_accept_errors(clock=lambda: now[0]):
                for _ in range(2048):
                    loop.call_exception_handler(context)
                now[0] = 6.0
                loop.call_exception_handler(context)
            lines = [record.getMessage() for record in caplog.records]
            assert len(lines) == 2
            assert "2047 more" in lines[1] and "Too many open files" in lines[0]
            assert all(record.exc_info is None for record in caplog.records)
            loop.call_exception_handler(context)  # no server: asyncio's own message again
            assert caplog.records[-1].getMessage().startswith("socket.accept() out of system resource")
    finally:
        loop.close()


def test_sigterm_cancels_a_request_still_running_after_the_shutdown_timeout(tmp_path, monkeypatch):
    """A POST held by a model that is still loading (it would wait --request_timeout, 60 s) is cancelled
    `shutdown_timeout` after SIGTERM: the server used to wait for it (docker stop and systemd SIGKILL first)."""
    release = loading_for_ever(monkeypatch)
    port, signalled = free_port(), []

    def post_then_sigterm():
        wait_until_answering(f"http://127.0.0.1:{port}")
        held = socket.create_connection(("127.0.0.1", port))
        held.sendall(b"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 4\r\n\r\nRIFF")
        time.sleep(0.5)
        signalled.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGTERM)
        held.settimeout(5)
        with contextlib.suppress(OSError):
            held.recv(1024)  # until the server ends the connection
        held.close()

    previous = signal.signal(signal.SIGTERM, lambda *args: None)  # uvicorn raises the signal again on its way out
    client = threading.Thread(target=post_then_sigterm, daemon=True)
    try:
        client.start()
        run_server(ServeSettings(model=str(tmp_path), request_timeout=60.0, shutdown_timeout=1.0), port=port,
                   log_level="critical")
        stopped = time.monotonic()
    finally:
        signal.signal(signal.SIGTERM, previous)
        release.set()  # the loading thread fails and ends (its loop is closed: it tells nobody)
    assert signalled and stopped - signalled[0] < 20  # 1 s and the shutdown, far from the request's 60 s
    client.join(timeout=10)


def test_the_readiness_probe_503_while_loading_is_not_counted_as_an_error(tmp_path, monkeypatch):
    release = loading_for_ever(monkeypatch)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = threading.Thread(target=run_server, args=(ServeSettings(model=str(tmp_path)),),
                              kwargs=dict(port=port, log_level="critical"), daemon=True)
    server.start()
    try:
        wait_until_answering(url)
        for _ in range(5):
            assert health_status(url) == "loading"
        with pytest.raises(urllib.error.HTTPError):  # a real error still counts
            urllib.request.urlopen(f"{url}/nowhere", timeout=5)
        metrics = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    finally:
        release.set()  # the model fails to load: the one-process server stops
        server.join(timeout=30)
    assert 'hfspeech_requests_total{route="/health",status="503"}' in metrics
    assert 'kind="http_503"' not in metrics
    assert 'hfspeech_errors_total{kind="not_found"} 1.0' in metrics


def test_a_cancelled_requests_windows_leave_the_line_at_once():
    """20 cancelled requests of 600 windows each left a live request batches of 1 or 2 windows (210 model calls
    for 320 windows); now their windows leave the queue when they are cancelled."""
    sizes = []

    async def scenario():
        batcher = DynamicBatcher(lambda batch: [0] * len(batch), max_batch_size=32, max_wait_ms=5,
                                 on_batch=sizes.append)
        batcher.start()
        dead = [asyncio.ensure_future(batcher.submit(list(range(600)))) for _ in range(20)]
        await asyncio.sleep(0)
        for request in dead:
            request.cancel()
        answer = await batcher.submit(list(range(320)))  # queued behind them at once, as a live server's would
        left = (batcher.waiting, len(batcher.queues))
        await batcher.stop()
        return left, answer

    left, answer = asyncio.run(scenario())
    assert answer == [0] * 320
    assert sizes == [32] * 10  # the old line: 1 or 2 live windows a batch
    assert left == (0, 0)
