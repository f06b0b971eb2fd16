"""A worker of `hfspeech serve --workers 2` killed while uvicorn's supervisor waits for its health answer is replaced
at once (`hfspeech.serve.worker_supervision`), not when the supervisor's 60-s wait for that answer runs out."""

from __future__ import annotations

import os
import re
import signal
import time

from hfspeech.serve.launcher import ServerProcess


def started_workers(server: ServerProcess) -> list[int]:
    """The workers' process ids, in the order they started, from uvicorn's log."""
    return [int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", server.output())]


def test_a_worker_killed_while_the_supervisor_pings_it_is_replaced_at_once(trained_cnn):
    with ServerProcess(str(trained_cnn), "--workers", "2", "--log_level", "info", startup_timeout=240) as running:
        deadline = time.monotonic() + 120
        while len(started_workers(running)) < 2:
            assert time.monotonic() < deadline, running.output()[-3000:]
            time.sleep(0.2)
        victim = started_workers(running)[0]
        os.kill(victim, signal.SIGSTOP)  # it cannot answer: the supervisor's next ping waits for it
        time.sleep(2)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        while len(started_workers(running)) < 3:  # before: ~60 s, the supervisor's whole wait for the answer
            assert time.monotonic() - killed_at < 30, running.output()[-3000:]
            time.sleep(0.2)
        assert running.process.poll() is None
