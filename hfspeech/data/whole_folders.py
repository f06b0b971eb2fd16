"""Datasets saved whole or not at all, for the caches `data.loading` and `training.teacher_cache` keep.

`save_to_disk` writes a folder file by file: a run killed, or a disk that filled, part-way left a folder that a
later run read as a cache (a traceback, or fewer rows). Saved beside it and renamed, a folder is complete or
absent; the caller decides what a failed write means to its user (one-line error, or a warning).

The folder beside it is `output_folders`' locked scratch folder (`.NAME-partial-*`, as an export's): a run
killed outright (SIGKILL, the OOM killer, power loss) cannot remove its own, and the next save of the same cache
removes it, unless a live run holds it."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import time
from pathlib import Path
from typing import Optional, Union

from datasets import Dataset, DatasetDict

from hfspeech.folder_writers import process_alive
from hfspeech.output_folders import locked_scratch, remove_leftover_scratch

# In the scratch folder: the cache this save replaces, set aside while the new copy is renamed in. Not `earlier`,
# an export's set-aside output, which a sweep puts back where the destination is missing: a killed save's would be a
# damaged cache, back only for the next save to set it aside again; a cache is a copy, deleted with its scratch.
REPLACED = "replaced"


def save_whole(dataset: Union[Dataset, DatasetDict], folder: Union[str, Path],
               looked_at: Optional[float] = None) -> None:
    """Save `dataset` into a locked `.<name>-partial-*` folder beside `folder`, then rename it to `folder`,
    replacing what was there (a damaged cache), or keeping the same data another process saved meanwhile: since
    `looked_at` (`time.time()` when the caller found `folder` missing or damaged; None: now). The scratch folders
    of this cache that no process holds (a killed run's) are removed first. Raises the `OSError` of a failed
    write; no scratch folder is left either way."""
    folder = Path(folder)
    started = time.time() if looked_at is None else looked_at
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_leftover_scratch(folder)
    remove_dead_runs_old_leftovers(folder)
    scratch, handle = locked_scratch(folder)
    try:
        partial = scratch / folder.name
        dataset.save_to_disk(str(partial))
        _put_in_place(partial, folder, started, scratch / REPLACED)
    finally:
        try:
            shutil.rmtree(scratch, ignore_errors=True)
        finally:
            if handle is not None:  # the lock goes last: until the folder is gone, no other run sweeps it
                os.close(handle)


def remove_dead_runs_old_leftovers(folder: Path) -> None:
    """`.NAME.partial-PID` and `.NAME.old-PID`, what a save killed outright left before the locked scratch folders,
    removed where that process is gone (a live one, or another process that took its number, keeps them)."""
    shape = re.compile(rf"\.{re.escape(folder.name)}\.(partial|old)-(\d+)")
    for entry in folder.parent.iterdir():
        found = shape.fullmatch(entry.name)
        if found and entry.is_dir() and not entry.is_symlink() and not process_alive(int(found.group(2))):
            shutil.rmtree(entry, ignore_errors=True)


def _put_in_place(partial: Path, folder: Path, started: float, aside: Path) -> None:
    """`partial` renamed to `folder`. A folder there saved before this save `started` (a damaged cache) is moved
    to `aside` (in the locked scratch folder: a run killed there leaves it to the next sweep) and deleted; one saved
    since is another process's whole copy of the same data, which it may be reading now: kept. (Two runs started
    together on new data used to fail, one renaming onto the other's folder, "Directory not empty", or deleting it
    while the other loaded it.)"""
    for _ in range(3):
        try:
            os.utime(partial)  # "saved since": a folder's mtime is its last write inside, not its renaming in
            os.replace(partial, folder)
            return
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not folder.is_dir():
                raise
        if folder.stat().st_mtime >= started:
            return
        with contextlib.suppress(FileNotFoundError):  # another process moved it first
            os.replace(folder, aside)
        shutil.rmtree(aside, ignore_errors=True)
    os.replace(partial, folder)
