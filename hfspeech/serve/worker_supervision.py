"""A worker of `hfspeech serve --workers N` that dies is replaced at once, not after the health-check timeout.

uvicorn's supervisor pings each worker in turn through a pipe and waits up to `timeout_worker_healthcheck` for the
answer (hfspeech allows 60 s: a worker imports torch and loads its model before it answers). It kept its own copy
of the pipe's worker end open, so a worker killed while a ping was on its way (out of memory, a crash, `kill -9`)
never closed that pipe: the supervisor waited the whole minute, watching no other worker, before it started the
replacement (seen: 1 killed worker in 3 to 10 in tests/test_serve_live.py; the supervisor's stack sat in
`Process._healthcheck`'s poll). `Worker` closes the supervisor's copy once the worker has started (the worker holds
its own), so a dead worker's end of the pipe closes with it: the ping reads end-of-file at once, which uvicorn
takes as "not alive", and the replacement starts.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from uvicorn.supervisors import multiprocess


class Worker(multiprocess.Process):
    """uvicorn's worker process, less the supervisor's copy of the worker's end of the health pipe."""

    def start(self) -> None:
        super().start()
        self.child_conn.close()  # passed to the started worker already; only the worker's own copy stays open


@contextlib.contextmanager
def dead_workers_seen_at_once() -> Iterator[None]:
    """uvicorn's supervisor starts `Worker`s (its module's `Process`) while this holds: around `uvicorn.run`."""
    started = multiprocess.Process
    multiprocess.Process = Worker
    try:
        yield
    finally:
        multiprocess.Process = started
