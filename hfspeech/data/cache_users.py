"""The `tmp*` files a run killed while `datasets` wrote a cache left behind, removed where no live run can own them.

`datasets.map` (and the index writes of `train_test_split`, `shuffle`) write a `tmp` + 8-character file beside the cache
file and rename it in when whole. A run killed outright (SIGKILL, the OOM killer, power loss) part-way left it for
good: 29 MB killed at 900 of 1,000 one-second clips. A later run cannot tell a dead run's file from one a live run
is writing, so every hfspeech process that may write into a cache folder holds a shared `flock` on a lock file there
(`LOCK_NAME`) until it exits (a long-lived one: until `MAX_HELD` other folders were used since). Before taking it,
a run tries the lock exclusively: when it gets it, no live hfspeech run on this machine uses the folder, and the
`tmp*` files there untouched since before this run and for `SWEEP_MARGIN` are a dead run's and are removed (one
line). The margin guards the writers no lock tells of: a user's own `datasets` script, a run on another machine of
a network file system whose locks are local (NFS `local_lock`, Lustre `localflock`). Where the exclusive try fails
(Windows, ENOLCK, a lock file opened read-only on NFS) nothing is removed but the shared lock is still held; a
folder the user saved (`leave_users_folder`) is neither locked nor swept.

Bottom layer: imports `output_folders`' lock, `folder_writers`' `flock_within`, `data.cache_locks` (and, for
`prepared_file`'s refusal, `errors`) only.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import os
import re
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Optional

from hfspeech.data.cache_locks import exclusive_tries_gated, open_lock_file
from hfspeech.folder_writers import flock_within
from hfspeech.output_folders import lock_taken

logger = logging.getLogger("hfspeech.data")

LOCK_NAME = ".hfspeech-cache-users.lock"  # empty; kept, as removing a lock file lets two runs lock two files
TEMPORARY_NAME = re.compile(r"tmp[a-z0-9_]{8}")  # `tempfile`'s names: datasets' `NamedTemporaryFile(dir=...)`
RUN_STARTED = time.time()  # a dead run's file was written before this run started; one written since is a live one's
# `datasets` writes its `tmp*` file once per writer batch (1,000 rows by default): a live writer that holds no lock
# (a user's own script, a run on another machine) touches it at least hourly unless a row takes over 3.6 s, while a
# killed run's file, removed by the first run an hour later, costs only disk space meanwhile.
SWEEP_MARGIN = 3600.0
# A stopped run (Ctrl-Z, a suspended SLURM job) that holds the exclusive lock mid-sweep must not stall the next.
SHARED_LOCK_WAIT = 10.0
# A long-lived process (a notebook, the test suite) uses a new cache folder per data set: past `MAX_HELD` folders,
# the one least recently held is let go (its maps long done) rather than keep a descriptor each (macOS allows 256).
MAX_HELD = 64
PREPARED_FOLDER = "hfspeech-prepared"  # under the datasets cache: `prepared_file`
_held: OrderedDict[str, Optional[int]] = OrderedDict()  # folder (real path) -> the descriptor of its shared lock
_users_own: set[str] = set()  # folders (real paths) that a user saved: `leave_users_folder`


def hold_cache_folders(dataset) -> None:
    """`hold_cache_folder` for each folder of the cache files behind `dataset` (a Dataset or DatasetDict), where
    its maps, splits and shuffles write: before the first of them, so that their `tmp*` files are covered."""
    splits = dataset.values() if isinstance(dataset, dict) else [dataset]
    for split in splits:
        for cache_file in getattr(split, "cache_files", []):  # a streamed split has none
            hold_cache_folder(Path(cache_file["filename"]).parent)


def leave_users_folder(dataset) -> None:
    """Neither lock nor sweep the folders of `dataset`'s cache files from now on: a folder the user saved
    (`save_to_disk`) is theirs, and their own scripts map into it without hfspeech's lock; a `tmp*` file there was
    removed while their script wrote it. No lock file is left among their files either."""
    splits = dataset.values() if isinstance(dataset, dict) else [dataset]
    for split in splits:
        for cache_file in getattr(split, "cache_files", []):
            _users_own.add(os.path.realpath(Path(cache_file["filename"]).parent))


def is_users_folder(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds a dataset the user saved (`leave_users_folder`): nothing of hfspeech's is written
    there (`data.prepare` decodes into the datasets cache instead)."""
    return os.path.realpath(folder) in _users_own


def beside_users_files(split, *settings) -> Optional[str]:
    """Where a cast of `split` writes: None (datasets' choice, beside the split's files), or for a split whose
    files are in a folder the user saved, `prepared_file`: a cast there copied their whole dataset into it."""
    if not split.cache_files or not is_users_folder(Path(split.cache_files[0]["filename"]).parent):
        return None
    return prepared_file(split, settings, "labels")


def prepared_file(split, settings, what: str = "decoded audio", key: Optional[str] = None) -> str:
    """`$HF_DATASETS_CACHE/hfspeech-prepared/<split's fingerprint, settings and key>.arrow`, where hfspeech writes
    what has no folder of its own (manifests, data in memory, a user's saved folder), the folder held as every
    writer holds it; one that cannot be written is a one-line `DataError` (unless the file is there to read).
    `key`: what else decides the content (the decoded audio's `decode_retry.decoded_fingerprint`, which holds its
    files' bytes and the decoder's code): `datasets.map` reads a file of that name whatever fingerprint it is given,
    and a manifest's clip rewritten in place with its size and times kept was read back as it was."""
    import datasets
    from datasets.fingerprint import Hasher

    from hfspeech.errors import DataError

    folder = Path(datasets.config.HF_DATASETS_CACHE) / PREPARED_FOLDER
    name = folder / f"{Hasher.hash([split._fingerprint, *settings, *([key] if key else [])])}.arrow"
    if not cached_files(str(name)) and (problem := cache_folder_problem(folder)):
        raise DataError(f"{folder}: cannot write the {what} to the datasets cache ({problem}); set "
                        "HF_DATASETS_CACHE to a folder you can write")
    hold_cache_folder(folder)
    return str(name)


def cached_files(name: str) -> list[str]:
    """The files of the cache `name` that are there: `name` itself, or the shards `datasets.map(num_proc=N)` writes
    in its place (`<name>_00000_of_00004.arrow`); none where it was never written. A warm cache is read even from a
    folder this run cannot write (a team's read-only cache)."""
    stem, extension = os.path.splitext(name)
    shards = glob.glob(f"{glob.escape(stem)}_[0-9][0-9][0-9][0-9][0-9]_of_[0-9][0-9][0-9][0-9][0-9]{extension}")
    return ([name] if os.path.isfile(name) else []) + sorted(shards)


def cache_folder_problem(folder: Path) -> Optional[str]:
    """Why no file can be written in `folder` (made when missing): read-only, not a folder, no space; else None.
    Another user's folder is named so (`Permission denied: it belongs to bob, drwxr-xr-x`): a team's cache."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        if error.errno != errno.EACCES or not error.strerror:
            return error.strerror or str(error)
        from hfspeech.file_owners import reason_and_remedy

        return reason_and_remedy(folder, error.strerror)[0]
    return None


def hold_cache_folder(folder: str | os.PathLike) -> None:
    """Hold `folder`'s shared lock until this process exits (its forked `num_proc` workers share it) or has held
    `MAX_HELD` other folders since, first removing a dead run's `tmp*` files when no live run holds it. Swept once
    per hold; never an error (a folder that cannot be written, or locked, is left as it is). A folder the user
    saved (`leave_users_folder`) is left alone."""
    key = os.path.realpath(folder)
    if is_users_folder(key):
        return
    if key in _held:
        _held.move_to_end(key)
        return
    _held[key] = _shared_lock_after_sweep(Path(key))
    while len(_held) > MAX_HELD:
        _, handle = _held.popitem(last=False)
        if handle is not None:
            os.close(handle)


@contextlib.contextmanager
def held_alone(folder: str | os.PathLike):
    """Inside, whether no other live hfspeech run holds `folder` (`hold_cache_folder`'s shared lock made exclusive
    for the while, then shared again, behind `exclusive_tries_gated`): a cache file there no run reads may be
    removed (`data.decoded_caches`)."""
    hold_cache_folder(folder)
    handle = _held.get(os.path.realpath(folder))
    if handle is None:  # no lock here (a user's saved folder, a read-only cache, no locks): never alone, no gate file
        yield False
        return
    with exclusive_tries_gated(Path(folder)) as gated:
        try:
            yield gated and bool(lock_taken(handle))
        finally:
            _shared_lock(handle, Path(folder))


def _shared_lock_after_sweep(folder: Path) -> Optional[int]:
    """The descriptor holding `folder`'s shared lock, after the sweep of `remove_dead_runs_temporary_files` when
    the exclusive lock was free; None where there is no lock to be had. An exclusive try that errors (`lock_taken`
    None: NFS refuses it on a file opened read-only) skips the sweep, not the shared lock: closing the file there
    left this run's live `tmp*` file to another run's sweep."""
    handle = open_lock_file(folder / LOCK_NAME)
    if handle is None:
        return None
    with exclusive_tries_gated(folder) as gated:
        if gated and lock_taken(handle):  # exclusive, non-blocking: True only when no other process holds it
            remove_dead_runs_temporary_files(folder)
        if _shared_lock(handle, folder):
            return handle
    os.close(handle)
    return None


def _shared_lock(handle: int, folder: Path) -> bool:
    """Whether the shared lock on `handle` was taken (turning this process's exclusive one, if any, into it), tried
    for `SHARED_LOCK_WAIT` seconds: a blocking wait never ended behind a stopped run's exclusive lock. No lock where
    there is none to be had (no fcntl: Windows; ENOLCK)."""
    taken = flock_within(handle, exclusive=False, seconds=SHARED_LOCK_WAIT, poll=0.05)
    if taken is False:  # another run sweeps (its exclusive lock): a moment, unless it was stopped
        logger.warning("data: %s is locked by another run (stopped?) for over %.0f s; going on without its lock",
                       folder, SHARED_LOCK_WAIT)
    return bool(taken)


@contextlib.contextmanager
def own_temporary_files_removed(folder: str | os.PathLike | None):
    """Inside, a `datasets` write into `folder` (held: `hold_cache_folder`) that fails leaves no `tmp*` file of its
    own. On a full disk datasets 4.8's `map` closes its writer again in its `except`, which fails again, and its
    removal of the `tmp*` file is never reached: 2 MB of a 4 MB decode stayed, the sweep kept it for an hour, and
    "make room and run again" failed again for a room that fits one decode. The `tmp*` files that appeared while
    inside are this run's when no other hfspeech run holds the folder (its exclusive lock taken), and are removed;
    where another run holds it they may be that run's live ones, and are left to the sweep. None: a split in memory,
    which writes no file."""
    if folder is None:
        yield
        return
    before = _temporary_names(Path(folder))
    try:
        yield
    except BaseException:
        _remove_new_temporary_files(Path(folder), before)
        raise


def _temporary_names(folder: Path) -> set[str]:
    try:
        return {entry.name for entry in os.scandir(folder) if TEMPORARY_NAME.fullmatch(entry.name)}
    except OSError:  # not made yet
        return set()


def _remove_new_temporary_files(folder: Path, before: set[str]) -> None:
    """The `tmp*` files in `folder` not in `before` removed, when this process holds its lock alone; the shared
    lock taken again either way (a failed exclusive try on Linux let go of it)."""
    new = _temporary_names(folder) - before
    handle = _held.get(os.path.realpath(folder)) if new else None
    if handle is None:
        _say_temporary_files_left(new, folder, "this run holds no lock on it")
        return
    with held_alone(folder) as alone:
        if not alone:
            _say_temporary_files_left(new, folder, "another run uses that folder")
            return
        for name in new:
            with contextlib.suppress(OSError):
                os.unlink(folder / name)


def _say_temporary_files_left(new: set[str], folder: Path, why: str) -> None:
    if new:  # (not held by this run: a folder of the user's, which no lock tells of, or another run's)
        logger.warning("data: %d temporary file(s) of the failed write left in %s: %s (a later run removes them "
                       "once they are an hour old)", len(new), folder, why)


def remove_dead_runs_temporary_files(folder: Path, before: Optional[float] = None) -> int:
    """Remove the `tmp*` files (`TEMPORARY_NAME`, plain files, not links) in `folder` last written before `before`
    (None: before this run started and `SWEEP_MARGIN` ago), and say so in one line; how many were removed. Only with
    `folder`'s exclusive lock held: then no live hfspeech run on this machine writes there."""
    before = min(RUN_STARTED, time.time() - SWEEP_MARGIN) if before is None else before
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
