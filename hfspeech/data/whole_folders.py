"""Datasets saved whole or not at all, for the caches `data.loading` and `training.teacher_cache` keep.

`save_to_disk` writes a folder file by file: a run killed, or a disk that filled, part-way left a folder that a
later run read as a cache (a traceback, or fewer rows). Saved beside it and renamed, a folder is complete or
absent; the caller decides what a failed write means to its user (one-line error, or a warning)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
from pathlib import Path
from typing import Optional, Union

from datasets import Dataset, DatasetDict


def save_whole(dataset: Union[Dataset, DatasetDict], folder: Union[str, Path],
               looked_at: Optional[float] = None) -> None:
    """Save `dataset` to a hidden `.<name>.partial-<pid>` beside `folder`, then rename it to `folder`, replacing
    what was there (a damaged cache), or keeping the same data another process saved meanwhile: since
    `looked_at` (`time.time()` when the caller found `folder` missing or damaged; None: now). Raises the
    `OSError` of a failed write; no partial folder is left either way."""
    folder = Path(folder)
    partial = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    started = time.time() if looked_at is None else looked_at
    try:
        dataset.save_to_disk(str(partial))
        _put_in_place(partial, folder, started)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _put_in_place(partial: Path, folder: Path, started: float) -> None:
    """`partial` renamed to `folder`. A folder there saved before this save `started` (a damaged cache) is moved
    aside and deleted; one saved since is another process's whole copy of the same data, which it may be reading
    now: kept. (Two runs started together on new data used to fail, one renaming onto the other's folder, "Directory
    not empty", or deleting it while the other loaded it.)"""
    for _ in range(3):
        try:
            os.replace(partial, folder)
            return
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not folder.is_dir():
                raise
        if folder.stat().st_mtime >= started:
            return
        aside = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):  # another process moved it first
            os.replace(folder, aside)
        shutil.rmtree(aside, ignore_errors=True)
    os.replace(partial, folder)
