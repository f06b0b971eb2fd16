"""The environment variables a server's `--workers` processes read, set for the server's lifetime only.

uvicorn's `--workers` processes are started by it, not by us: what they need travels in the environment (the
settings, the header deadline, prometheus_client's multiprocess folder). `run_server` used to set them and leave
them: a notebook or script that served once kept them, PROMETHEUS_MULTIPROC_DIR naming a folder already removed,
which prometheus_client then read in every later server of that process.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Iterator

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def set_for_workers(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ inside the block, with a fresh metrics folder (removed after) where the user set none;
    each variable put back as it was (absent, or its earlier value) when the block ends. A one-process server
    needs none of them (`connections.with_header_timeout`)."""
    values = dict(values)
    made = None
    if not os.environ.get(METRICS_DIR_ENV):
        made = values[METRICS_DIR_ENV] = tempfile.mkdtemp(prefix="hfspeech-metrics-")
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if made:
            shutil.rmtree(made, ignore_errors=True)
