"""The root logger as the caller had it, around library code that configures it behind the caller's back.

onnxruntime's quantizer logs with the `logging` module's own functions (`logging.debug(f"Ignore MatMul ...")` for
each MatMul it leaves float: the baselines' front end), and each of those runs `logging.basicConfig()` on a root
logger without handlers. In a notebook, after one `export_onnx(run, quantize="int8")` the root had a WARNING handler
on stderr: the user's own `logging.basicConfig(level=logging.INFO)` then did nothing (it configures a bare root
only), and an in-process `hfspeech train` printed none of its INFO lines (its log set-up is that same call).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator


@contextlib.contextmanager
def root_logger_kept() -> Iterator[None]:
    """The root logger's handlers and level after the block as they were before it (an error or Ctrl-C included):
    a handler added meanwhile is taken off again. What the block logs is printed as the library meant it to be."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in [handler for handler in root.handlers if handler not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
