"""Dead workers' metric files added into one file per type, so that a kill at any moment neither loses nor doubles
a count.

The merge used to add each dead file's values into `counter_dead.db` in place, then remove the file. A worker
killed between the two (uvicorn's health-check timeout, the OOM killer, a SIGHUP'd server stopping it) left the
file beside totals that already held it: the next merge added it again, and the server's counts were doubled for
good; a kill in the middle of the writing left totals half added. Now a merge is a small transaction whose commit
is one rename:

1. `next_totals_written`: each type's new totals (`<kind>_dead.db` plus the dead files) written beside it as
   `<kind>_dead.db.next` (prometheus_client reads only `*.db`: a scrape never sees them);
2. `committed`: the journal `.hfspeech-merged.json`, naming the files those totals hold, written under a
   temporary name and renamed in: from here on the merge is done, whatever happens;
3. `totals_installed`: each `.next` renamed over its `<kind>_dead.db`;
4. `merged_files_removed`: the dead files the journal names removed, then the journal.

Each merge first finishes one a kill interrupted (`finish_interrupted`): with a journal, steps 3 and 4 again
(each does only what is left); without one, the `.next` files are a merge never committed, removed, and the dead
files, all still there, are merged afresh. All of it under the folder's merge lock, which `/metrics` takes
(shared) to read: no scrape sees a merge half done.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from hfspeech.folder_writers import process_alive

logger = logging.getLogger("hfspeech.serve")
MERGED_TYPES = ("counter", "histogram")  # summed across processes, so a dead one's counts can be added up
LOCK_FILE = ".hfspeech-merge.lock"  # not `*.db`: prometheus_client reads only those
JOURNAL = ".hfspeech-merged.json"  # the commit of a merge: the files its totals hold
NEXT = ".next"  # the suffix of totals written and not yet in place


def file_pid(name: str) -> Optional[int]:
    """The writing process of a prometheus_client file (`counter_12.db`, `gauge_livesum_12.db`), else None
    (`counter_dead.db`, the lock, anything else)."""
    last = name[:-3].rsplit("_", 1)[-1] if name.endswith(".db") else ""
    return int(last) if last.isdigit() else None


@contextmanager
def folder_lock(folder, shared: bool) -> Iterator[None]:
    """The folder's merge lock (shared: a scrape; exclusive: a merge), where there is one to be had (no fcntl:
    Windows; a file system without locks: the block runs unlocked)."""
    try:
        import fcntl

        handle = open(Path(folder) / LOCK_FILE, "a+b")  # read and write: NFS locks a flock as either
    except (ImportError, OSError):
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        except OSError:  # ENOLCK
            pass
        yield


def merge_dead_files(folder: Path) -> None:
    """The files of the folder's dead processes merged into one per type, after prometheus_client's own
    bookkeeping for a dead process (`mark_process_dead`: its live gauges)."""
    from prometheus_client.multiprocess import mark_process_dead

    with folder_lock(folder, shared=False):
        finish_interrupted(folder)
        dead = dead_files(folder)
        for pid in dead:
            mark_process_dead(pid, str(folder))
        merged = next_totals_written(folder, [path for paths in dead.values() for path in paths])
        if merged:
            committed(folder, merged)
            finish_interrupted(folder)


def dead_files(folder: Path) -> dict[int, list[Path]]:
    """The files of processes no longer alive, by pid."""
    dead: dict[int, list[Path]] = {}
    for path in sorted(folder.glob("*.db")):
        pid = file_pid(path.name)
        if pid is not None and not process_alive(pid):
            dead.setdefault(pid, []).append(path)
    return dead


def next_totals_written(folder: Path, paths: list[Path]) -> list[Path]:
    """Step 1: each type's `<kind>_dead.db` plus the values of `paths` of that type, written to
    `<kind>_dead.db.next`; the paths whose values they hold returned. A file that cannot be read is left where it
    is, and said: its counts stay in every scrape."""
    merged = []
    for kind in MERGED_TYPES:
        sources = [path for path in paths if path.name.split("_", 1)[0] == kind]
        totals_path = folder / f"{kind}_dead.db"
        totals = values_in(totals_path) if totals_path.exists() and sources else {}
        readable = [path for path in sources if added(totals, path)]
        if readable:
            values_written(Path(f"{totals_path}{NEXT}"), totals)
            merged += readable
    return merged


def values_in(path: Path) -> dict[str, tuple[float, float]]:
    """A prometheus_client file's values and timestamps, by key."""
    from prometheus_client.mmap_dict import MmapedDict

    return {key: (value, timestamp) for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(path))}


def added(totals: dict[str, tuple[float, float]], path: Path) -> bool:
    """`path`'s values added into `totals`; False (and said) where the file cannot be read."""
    try:
        values = values_in(path)
    except Exception as error:  # a truncated or foreign file: prometheus_client raises several kinds
        logger.warning("warning: %s: not merged, left as it is (%s: %s)", path, type(error).__name__, error)
        return False
    for key, (value, timestamp) in values.items():
        totals[key] = (totals.get(key, (0.0, 0.0))[0] + value, timestamp)
    return True


def values_written(path: Path, totals: dict[str, tuple[float, float]]) -> None:
    """`totals` as a fresh prometheus_client file (what a kill left there before is not added to)."""
    from prometheus_client.mmap_dict import MmapedDict

    path.unlink(missing_ok=True)
    written = MmapedDict(str(path))
    try:
        for key, (value, timestamp) in totals.items():
            written.write_value(key, value, timestamp)
    finally:
        written.close()


def committed(folder: Path, merged: list[Path]) -> None:
    """Step 2, the commit: the journal naming the files the `.next` totals hold, renamed in whole."""
    temporary = folder / f"{JOURNAL}.tmp"
    temporary.write_text(json.dumps({"merged": [path.name for path in merged]}), encoding="utf-8")
    os.replace(temporary, folder / JOURNAL)


def finish_interrupted(folder: Path) -> None:
    """A merge a kill interrupted, finished where it was committed (steps 3 and 4), else undone."""
    if not (folder / JOURNAL).exists():  # never committed: the dead files still hold their counts
        for path in [*folder.glob(f"*_dead.db{NEXT}"), folder / f"{JOURNAL}.tmp"]:
            path.unlink(missing_ok=True)
        return
    totals_installed(folder)
    merged_files_removed(folder)


def totals_installed(folder: Path) -> None:
    """Step 3: each committed `<kind>_dead.db.next` renamed over `<kind>_dead.db`."""
    for path in folder.glob(f"*_dead.db{NEXT}"):
        os.replace(path, path.with_suffix(""))


def merged_files_removed(folder: Path) -> None:
    """Step 4: the dead files the journal names (their counts are in the totals now) removed, then the journal."""
    journal = folder / JOURNAL
    for name in json.loads(journal.read_text(encoding="utf-8"))["merged"]:
        (folder / Path(name).name).unlink(missing_ok=True)  # (a bare name: never a file outside the folder)
    journal.unlink()
