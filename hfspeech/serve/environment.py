"""What a server's `--workers` run changes in this process, set for the server's lifetime only.

uvicorn's `--workers` processes are started by it, not by us: what they need travels in the environment (the
settings, the header deadline, prometheus_client's multiprocess folder). `run_server` used to set them and leave
them: a notebook or script that served once kept them, PROMETHEUS_MULTIPROC_DIR naming a folder already removed,
which prometheus_client then read in every later server of that process.

uvicorn's supervisor of the workers takes over the process's signal handlers (SIGINT, SIGTERM, ...) to stop them
and never hands them back: once `run_server(..., workers=2)` had returned, a script's Ctrl-C and `kill` only
appended to the list of a supervisor that was gone, and the script could no longer be interrupted or stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

from hfspeech.cpu_threads import environment_set, worker_environment

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PREFIX = "hfspeech-metrics-"


def folder_prefix(pid: int) -> str:
    """A metrics folder's name up to mkdtemp's random part: named by its supervisor's pid, so that a later server
    can tell a killed one's folder from a live one's (`metrics_folder.remove_orphaned_folders`)."""
    return f"{METRICS_PREFIX}{pid}-"


@contextmanager
def set_for_workers(values: dict[str, str], workers: int = 1) -> Iterator[None]:
    """`values` in os.environ inside the block, with a fresh metrics folder (removed after) where the user set none
    and each of the `workers` processes' share of the CPU threads (`cpu_threads.worker_environment`: 4 workers on
    8 usable CPUs ran 8 threads each, 32 on 8 CPUs; none where the user set OMP_NUM_THREADS); each variable put
    back as it was (absent, or its earlier value) when the block ends, and the signal handlers too
    (`signal_handlers_kept`). A one-process server needs none of them (`connections.with_header_timeout`)."""
    values = {**worker_environment(workers), **values}
    made = None
    if not os.environ.get(METRICS_DIR_ENV):
        made = values[METRICS_DIR_ENV] = tempfile.mkdtemp(prefix=folder_prefix(os.getpid()))
    try:
        with environment_set(values), signal_handlers_kept():
            yield
    finally:
        if made:
            shutil.rmtree(made, ignore_errors=True)


@contextmanager
def signal_handlers_kept() -> Iterator[None]:
    """The handlers of the signals uvicorn's worker supervisor takes over (its `SIGNALS`) put back as they were when
    the block ends. Only the main thread may set one; elsewhere uvicorn could not have installed its own either, so
    there is nothing to put back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from uvicorn.supervisors.multiprocess import SIGNALS  # the ones its `Multiprocess` supervisor takes over

    before = {number: signal.getsignal(number) for number in SIGNALS}
    try:
        yield
    finally:
        for number, handler in before.items():
            if handler is not None:  # None: a handler set outside Python, which Python cannot set back
                signal.signal(number, handler)
