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
    """A root logger without handlers before the block is without them after it (an error or Ctrl-C included): the
    handler `logging.basicConfig()` gave it meanwhile (a stream handler of `logging.BASIC_FORMAT`) is taken off
    again. Where the root had handlers, basicConfig adds none, and nothing is touched; nor is a handler of another
    form (a user's, added from another thread meanwhile), nor the level, which basicConfig() without one keeps
    (reviewer R4: a user's handler and INFO level set meanwhile were undone)."""
    root = logging.getLogger()
    bare = not root.handlers
    try:
        yield
    finally:
        for handler in list(root.handlers) if bare else []:
            if type(handler) is logging.StreamHandler and getattr(handler.formatter, "_fmt", None) == \
                    logging.BASIC_FORMAT:
                root.removeHandler(handler)
