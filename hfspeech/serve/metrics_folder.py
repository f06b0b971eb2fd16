"""The multiprocess metrics folder of a `--workers N` server, kept from growing for as long as the server runs.

prometheus_client's multiprocess mode (`metrics.py`) has each worker write its samples to files named by its pid
(`counter_<pid>.db`, `histogram_<pid>.db`) in one folder, and keeps a dead worker's files: its counts still belong
in the server's totals. Two leaks followed. Each worker uvicorn restarted (one died, or SIGHUP replaced them all)
left its 2 files for good, and every scrape read them all; and a supervisor that was SIGKILLed (the OOM killer,
`kill -9`) never removed its folder from the temporary folder.

- `dead_workers_merged(folder)`: each worker as it starts, and each scrape (SIGHUP starts the new workers before
  it stops the old ones), adds the dead workers' counts into one file per type
  (`counter_dead.db`, `histogram_dead.db`) and removes theirs, after prometheus_client's own bookkeeping for a dead
  process (`mark_process_dead`: its live gauges). Under a lock that `/metrics` takes too (`scrape_lock`), so that
  no scrape counts a dead worker twice or not at all, nor reads a file as it is removed.
- `remove_orphaned_folders()`: the supervisor names its folder with its pid (`hfspeech-metrics-<pid>-...`,
  `environment.set_for_workers`) and, starting, removes this user's folders so named whose supervisor and workers
  are all gone.

Only folders hfspeech named are touched: a folder the user chose (PROMETHEUS_MULTIPROC_DIR) is theirs.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator, Optional

from hfspeech.serve.environment import METRICS_PREFIX

logger = logging.getLogger("hfspeech.serve")
OWN_NAME = re.compile(METRICS_PREFIX + r"(\d+)-[A-Za-z0-9_]+")  # `environment.folder_prefix(pid)` + mkdtemp's part
MERGED_TYPES = ("counter", "histogram")  # summed across processes, so a dead one's counts can be added up
LOCK_FILE = ".hfspeech-merge.lock"  # not `*.db`: prometheus_client reads only those


def is_own_folder(folder) -> bool:
    return OWN_NAME.fullmatch(Path(folder).name) is not None


def is_alive(pid: int) -> bool:
    """Whether a process `pid` exists (another user's too). pid 0 or below is never judged dead: os.kill would
    signal a process group."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, as another user's
        return True
    return True


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

        handle = open(Path(folder) / LOCK_FILE, "ab")  # a lock: no text written
    except (ImportError, OSError):
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        except OSError:  # ENOLCK
            pass
        yield


def scrape_lock(folder):
    """What `/metrics` holds while it reads the folder: the merge lock of hfspeech's own folders."""
    return folder_lock(folder, shared=True) if folder and is_own_folder(folder) else nullcontext()


def dead_workers_merged(folder) -> None:
    """The files of the folder's dead processes merged into one per type (see the module's docstring)."""
    if not folder or not is_own_folder(folder) or not Path(folder).is_dir():
        return
    from prometheus_client.multiprocess import mark_process_dead

    with folder_lock(folder, shared=False):
        dead = {}
        for path in sorted(Path(folder).glob("*.db")):
            pid = file_pid(path.name)
            if pid is not None and not is_alive(pid):
                dead.setdefault(pid, []).append(path)
        for pid, paths in dead.items():
            mark_process_dead(pid, str(folder))
            for path in paths:
                kind = path.name.split("_", 1)[0]
                if kind in MERGED_TYPES and path.exists():
                    _merge_into(path, path.with_name(f"{kind}_dead.db"))


def _merge_into(path: Path, merged_path: Path) -> None:
    """`path`'s values added to `merged_path`'s (prometheus_client's own file format), then `path` removed. A
    file that cannot be read is left where it is, and said: its counts stay in every scrape."""
    from prometheus_client.mmap_dict import MmapedDict

    try:
        values = list(MmapedDict.read_all_values_from_file(str(path)))
    except Exception as error:  # a truncated or foreign file: prometheus_client raises several kinds
        logger.warning("warning: %s: not merged, left as it is (%s: %s)", path, type(error).__name__, error)
        return
    merged = MmapedDict(str(merged_path))
    try:
        for key, value, timestamp, _ in values:
            merged.write_value(key, merged.read_value(key)[0] + value, timestamp)
    finally:
        merged.close()
    path.unlink()


def remove_orphaned_folders(parent: Optional[str] = None) -> list[str]:
    """This user's hfspeech metrics folders in the temporary folder whose supervisor is gone and in which no worker
    lives either (a SIGKILLed supervisor's workers serve on, and write there): removed, their names returned. Never
    another user's folder, nor a link, nor a folder named otherwise."""
    if not hasattr(os, "getuid"):  # Windows: no owners to tell apart this way
        return []
    removed = []
    with os.scandir(parent or tempfile.gettempdir()) as entries:
        for entry in entries:
            match = OWN_NAME.fullmatch(entry.name)
            try:
                if not match or not entry.is_dir(follow_symlinks=False) or \
                        entry.stat(follow_symlinks=False).st_uid != os.getuid():
                    continue
                pids = [int(match[1])] + [pid for name in os.listdir(entry.path) if (pid := file_pid(name))]
            except OSError:  # gone meanwhile, or not ours to read
                continue
            if not any(is_alive(pid) for pid in pids):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.name)
    return removed
