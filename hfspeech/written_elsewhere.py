"""Where a failed write's file is not the output's: the folder that is full named, not the output folder.

`errors.writing_to(path, ...)` said every full or read-only disk met inside it as `path: cannot write`: with TMPDIR
on a small tmpfs, `export --output exp` said `exp: cannot write (No space left on device); ... export elsewhere`
while exp's disk had 62 GB free; a full /dev/shm was blamed on the datasets cache (audit LM). Bottom layer, as
`errors`, which it is imported from.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Optional

from hfspeech.errors import WRITE_ERRNOS, OutputWriteError, cannot_write, first_in_chain, writing_to

TMPDIR_HINT = "set TMPDIR to a writable folder with more room, and run again"


def written_elsewhere(error: BaseException, path, reason: str) -> Optional[OutputWriteError]:
    """`FOLDER: cannot write (...)` naming the folder of the file that failed, where that file (the OSError's, up the
    cause/context chain) is neither in `path` nor on its disk: a temporary file (onnx export's, quantization's, on a
    small tmpfs TMPDIR) or /dev/shm (workers'), where making room at `path` would not help. None where it is (the
    output's own or a staging folder beside it, `written_beside`) or unknown: `path` is then the one to name."""
    error = first_in_chain(error, lambda each: isinstance(each, OSError) and each.errno in WRITE_ERRNOS)
    name = error and error.filename
    if name is None or path is None:
        return None
    given = [os.path.abspath(os.fsdecode(each)) for each in (name, path)]  # a link in it to /dev/full is its own
    real = [os.path.realpath(each) for each in given]
    if is_within(*given) or is_within(*real) or device_of(given[0]) == device_of(given[1]):
        return None
    file = real[0]
    if is_within(file, "/dev/shm"):
        hint = "/dev/shm is full: give it more room (--shm-size for Docker), or use fewer workers, and run again"
    elif is_within(file, os.path.realpath(tempfile.gettempdir())):
        hint = TMPDIR_HINT
    else:
        hint = "make room there, and run again"
    return cannot_write(os.path.dirname(file), reason, hint)


def is_within(file: str, folder: str) -> bool:
    return os.path.commonpath([file, folder]) == folder


def device_of(path: str) -> Optional[int]:
    """The device of `path`'s nearest existing folder (a temporary folder may be gone by now); None if none is read."""
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    with contextlib.suppress(OSError):
        return os.stat(path).st_dev
    return None


def temporary_writes():
    """A block that writes only into a temporary folder (an export's second graph, quantization's augmented model):
    a full TMPDIR said as `/tmp: cannot write (...); set TMPDIR ...`. A failed write of onnx names no file, and the
    export's `writing_to` blamed its output folder (a 1 MB TMPDIR: `exp: cannot write`, with 62 GB free there)."""
    return writing_to(tempfile.gettempdir(), TMPDIR_HINT)
