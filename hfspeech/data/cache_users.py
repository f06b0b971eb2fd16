"""The `tmp*` files a run killed while `datasets` wrote a cache left behind, removed where no live run can own them.

`datasets.map` (and the index writes of `train_test_split`, `shuffle`) write a `tmpXXXXXXXX` file beside the cache
file and rename it in when whole. A run killed outright (SIGKILL, the OOM killer, power loss) part-way left it for
good: 29 MB killed at 900 of 1,000 one-second clips. A later run cannot tell a dead run's file from one a live run
is writing, so every hfspeech process that may write into a cache folder holds a shared `flock` on a lock file there
(`LOCK_NAME`) until it exits (a long-lived one: until `MAX_HELD` other folders were used since). Before taking it,
a run tries the lock exclusively: when it gets it, no live hfspeech run uses the folder, and the `tmp*` files there
older than this run are a dead run's and are removed (one line). Where no lock can be taken (Windows, ENOLCK), or
the folder cannot be written, nothing is removed.

Bottom layer: imports `output_folders`' lock only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections import OrderedDict
from pathlib import Path
from typing import Optional

from hfspeech.output_folders import lock_taken

logger = logging.getLogger("hfspeech.data")

LOCK_NAME = ".hfspeech-cache-users.lock"  # empty; kept, as removing a lock file lets two runs lock two files
TEMPORARY_NAME = re.compile(r"tmp[a-z0-9_]{8}")  # `tempfile`'s names: datasets' `NamedTemporaryFile(dir=...)`
RUN_STARTED = time.time()  # a dead run's file was written before this run started; one written since is a live one's
# A long-lived process (a notebook, the test suite) uses a new cache folder per data set: past `MAX_HELD` folders,
# the one least recently held is let go (its maps long done) rather than keep a descriptor each (macOS allows 256).
MAX_HELD = 64
_held: OrderedDict[str, Optional[int]] = OrderedDict()  # folder (real path) -> the descriptor of its shared lock


def hold_cache_folders(dataset) -> None:
    """`hold_cache_folder` for each folder of the cache files behind `dataset` (a Dataset or DatasetDict), where
    its maps, splits and shuffles write: before the first of them, so that their `tmp*` files are covered."""
    splits = dataset.values() if isinstance(dataset, dict) else [dataset]
    for split in splits:
        for cache_file in getattr(split, "cache_files", []):  # a streamed split has none
            hold_cache_folder(Path(cache_file["filename"]).parent)


def hold_cache_folder(folder: str | os.PathLike) -> None:
    """Hold `folder`'s shared lock until this process exits (its forked `num_proc` workers share it) or has held
    `MAX_HELD` other folders since, first removing a dead run's `tmp*` files when no live run holds it. Swept once
    per hold; never an error (a folder that cannot be written, or locked, is left as it is)."""
    key = os.path.realpath(folder)
    if key in _held:
        _held.move_to_end(key)
        return
    _held[key] = _shared_lock_after_sweep(Path(key))
    while len(_held) > MAX_HELD:
        _, handle = _held.popitem(last=False)
        if handle is not None:
            os.close(handle)


def _shared_lock_after_sweep(folder: Path) -> Optional[int]:
    """The descriptor holding `folder`'s shared lock, after the sweep of `remove_dead_runs_temporary_files` when
    the exclusive lock was free; None where there is no lock to be had."""
    handle = _open_lock_file(folder / LOCK_NAME)
    if handle is None:
        return None
    taken = lock_taken(handle)  # exclusive, non-blocking: True only when no other process holds the folder
    if taken:
        remove_dead_runs_temporary_files(folder)
    try:
        if taken is None:  # no fcntl (Windows), or ENOLCK: nothing to hold
            raise OSError("no lock to be had")
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_SH)  # waits only while another run sweeps (its exclusive lock)
    except OSError:
        os.close(handle)
        return None
    return handle


def _open_lock_file(path: Path) -> Optional[int]:
    """The lock file opened (made when missing, in a folder made when missing: `datasets` makes it anyway); read-only
    when another user's; None when it cannot be opened at all (a read-only cache: this run writes nothing there)."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    with contextlib.suppress(OSError):
        return os.open(path, os.O_RDONLY)
    return None


def remove_dead_runs_temporary_files(folder: Path, before: Optional[float] = None) -> int:
    """Remove the `tmp*` files (`TEMPORARY_NAME`, plain files, not links) in `folder` last written before `before`
    (None: `RUN_STARTED`), and say so in one line; how many were removed. Only with `folder`'s exclusive lock held:
    then no live hfspeech run writes there."""
    before = RUN_STARTED if before is None else before
    removed, size = 0, 0
    try:
        entries = list(os.scandir(folder))
    except OSError:  # removed meanwhile
        return 0
    for entry in entries:
        if not TEMPORARY_NAME.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove: left
            info = entry.stat(follow_symlinks=False)
            if info.st_mtime < before:
                os.unlink(entry.path)
                removed, size = removed + 1, size + info.st_size
    if removed:
        logger.warning("data: removed %d temporary file(s) (%.1f MB) that a run killed while writing its cache left "
                       "in %s", removed, size / 2**20, folder)
    return removed
