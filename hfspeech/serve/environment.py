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
import signal
import threading
from contextlib import ExitStack, contextmanager
from typing import Iterator

from hfspeech.cpu_threads import environment_set, worker_environment
from hfspeech.serve.metrics_folder import METRICS_DIR_ENV, new_folder_kept_alive


@contextmanager
def set_for_workers(values: dict[str, str], workers: int = 1) -> Iterator[None]:
    """`values` in os.environ inside the block, with a fresh metrics folder (removed after) where the user set none
    and each of the `workers` processes' share of the CPU threads (`cpu_threads.worker_environment`: 4 workers on
    8 usable CPUs ran 8 threads each, 32 on 8 CPUs; none where the user set OMP_NUM_THREADS); each variable put
    back as it was (absent, or its earlier value) when the block ends, and the signal handlers too
    (`signal_handlers_kept`). A one-process server needs none of them (`connections.with_header_timeout`)."""
    values = {**worker_environment(workers), **values}
    with ExitStack() as stack:
        if not os.environ.get(METRICS_DIR_ENV):  # held alive by this process while it serves (metrics_folder.py)
            values[METRICS_DIR_ENV] = stack.enter_context(new_folder_kept_alive())
        with environment_set(values), signal_handlers_kept():
            yield


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
