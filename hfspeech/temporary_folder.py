"""No folder to write temporary files in, as one line wherever it surfaces.

A container with a read-only root file system and no writable `/tmp` (and `/` as its working folder), or a full
`/tmp`: Python's `tempfile.gettempdir()` finds no usable folder and raises `FileNotFoundError: No usable temporary
directory found in [...]`. torch and datasets import dill, which asks for it: train, evaluate, export, stage, push,
pretrained, tiny-model, average and `serve --workers` ended in a 66-line traceback; predict and stream printed the
raw error, a TorchScript model was called "corrupt", a one-process server said `FileNotFoundError: ...`. The CLI's
catch-all, its user-error wrapper, the model loaders and the server ask `no_temporary_folder` first. Said when it
happens, not asked before every command: `pretrained --list`, `demo-data` and most `--help` pages need none.

Bottom layer: imports `errors` only.
"""

from __future__ import annotations

import os
from typing import Optional

from hfspeech.errors import HfspeechError, first_in_chain


def no_temporary_folder(error: Optional[BaseException]) -> Optional[HfspeechError]:
    """The one line for Python's "no usable temporary directory" error (itself, or the error a library raised from
    it), naming the folders Python tried in its order, a full one as such; None for any other error."""
    found = first_in_chain(error, lambda each: isinstance(each, FileNotFoundError)
                           and str(each.strerror).startswith("No usable temporary directory"))
    if found is None:
        return None
    import tempfile

    candidates = getattr(tempfile, "_candidate_tempdir_list", lambda: [])()  # (private: may go in a new Python)
    tried = [_named_with_its_problem(folder) for folder in candidates]  # in Python's order
    where = ", ".join(tried[:-1]) + f" and the working folder {tried[-1]}" if len(tried) > 1 else ", ".join(tried)
    return HfspeechError(f"no writable temporary folder{f' (tried {where})' if tried else ''}: set TMPDIR to a "
                         "folder this user may write")


def _named_with_its_problem(folder: str) -> str:
    """`folder` as Python tried it, and "(full)" where it is a writable file system with no room left: making room
    is the way out there, not another folder. Read-only and pseudo file systems (squashfs, /proc) report no free
    blocks either: not "full"."""
    named = folder if folder == os.curdir else os.path.abspath(folder)
    try:
        usage = os.statvfs(folder) if os.path.isdir(folder) and hasattr(os, "statvfs") else None
    except OSError:
        usage = None
    full = usage is not None and usage.f_blocks > 0 and usage.f_bavail == 0 and not usage.f_flag & os.ST_RDONLY
    return f"{named} (full)" if full else named
