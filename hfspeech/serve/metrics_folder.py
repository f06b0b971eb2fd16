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
- `remove_orphaned_folders()`: a supervisor, starting, removes this user's hfspeech folders whose supervisor and
  workers are all gone. Gone is told by a lock, not by pids: the supervisor (`new_folder_kept_alive`) and each
  worker (`keep_alive_while_this_process_lives`) hold a shared flock on the folder's `.hfspeech-alive.lock` for
  as long as they live, and the kernel drops it when they die, however they die. Pids meant nothing across pid
  namespaces (two containers sharing /tmp, a TMPDIR on NFS used by several hosts): each server saw the other's
  pids as dead and removed a live server's folder, whose /metrics then failed for good; and in a container the
  supervisor is often pid 1, always "alive", so a killed one's folder was never removed.

Only folders hfspeech named are touched: a folder the user chose (PROMETHEUS_MULTIPROC_DIR) is theirs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import BinaryIO, Iterator, Optional

from hfspeech.folder_writers import process_alive
from hfspeech.output_folders import lock_taken

logger = logging.getLogger("hfspeech.serve")
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess folder
METRICS_PREFIX = "hfspeech-metrics-"
STARTING_PREFIX = ".hfspeech-metrics-new-"  # a folder not yet held alive: a name the sweep never reads
OWN_NAME = re.compile(METRICS_PREFIX + r"(\d+)-[A-Za-z0-9_]+")  # `folder_prefix(pid)` + mkdtemp's part
MERGED_TYPES = ("counter", "histogram")  # summed across processes, so a dead one's counts can be added up
LOCK_FILE = ".hfspeech-merge.lock"  # not `*.db`: prometheus_client reads only those
ALIVE_FILE = ".hfspeech-alive.lock"  # held (shared) by the supervisor and each worker for as long as it lives
held_for_life: list = []  # this worker's lock on its server's folder, released by the kernel when it exits


def folder_prefix(pid: int) -> str:
    """A metrics folder's name up to mkdtemp's random part: named by its supervisor's pid, so that a person (and
    a folder of an hfspeech that judged by pids, `remove_orphaned_folders`) can tell whose it is."""
    return f"{METRICS_PREFIX}{pid}-"


def is_own_folder(folder) -> bool:
    return OWN_NAME.fullmatch(Path(folder).name) is not None


def shared_lock_on(path: Path, create: bool) -> Optional[BinaryIO]:
    """An open handle holding a shared flock on `path` (its own open file description: the workers are spawned
    and inherit none), or None where none can be had: no fcntl (Windows), no such file, a file system without
    locks (ENOLCK). Never waits: only a sweep about to remove the folder holds it exclusively."""
    try:
        import fcntl

        handle = open(path, "a+b") if create else open(path, "rb")  # readable: NFS locks a shared flock as a read
    except (ImportError, OSError):
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


@contextmanager
def new_folder_kept_alive() -> Iterator[str]:
    """A fresh metrics folder in the temporary folder, named `folder_prefix(<this pid>)` + mkdtemp's random part,
    held alive until the block ends, then removed. Made under a name the sweep ignores and renamed once its lock
    is held, so that no other server ever finds it named and not held (a killed server's, to its eyes)."""
    starting = Path(tempfile.mkdtemp(prefix=STARTING_PREFIX))
    handle = shared_lock_on(starting / ALIVE_FILE, create=True)
    folder = starting.with_name(folder_prefix(os.getpid()) + starting.name[len(STARTING_PREFIX):])
    try:
        starting.rename(folder)
        yield str(folder)
    finally:
        if handle:
            handle.close()
        for path in (starting, folder):
            shutil.rmtree(path, ignore_errors=True)


def keep_alive_while_this_process_lives(folder) -> None:
    """A worker's shared lock on its server's folder, held until it exits: a SIGKILLed supervisor's workers serve
    on and write there, and their locks keep the folder from the next server's sweep. A folder removed under the
    server (a cleaner of /tmp, `rm -rf`) is made again: each restarted worker died opening its metric files there,
    and uvicorn started it again, forever (reviewer R4: 49 tracebacks in 25 s)."""
    if folder and is_own_folder(folder):
        with contextlib.suppress(OSError):  # (unwritable: the metrics' own error says it)
            os.makedirs(folder, exist_ok=True)
        handle = shared_lock_on(Path(folder) / ALIVE_FILE, create=True)
        if handle:
            held_for_life.append(handle)


def check_users_folder() -> None:
    """A PROMETHEUS_MULTIPROC_DIR of the user's that is no folder: one line before any worker starts (each worker
    died with a traceback, and the supervisor hung on its defunct workers, deaf to SIGTERM: reviewer R4)."""
    folder = os.environ.get(METRICS_DIR_ENV)
    if folder and not os.path.isdir(folder):
        from hfspeech.errors import UsageError

        raise UsageError(f"{METRICS_DIR_ENV}={folder}: no such folder; make it, or unset the variable (a server "
                         "with --workers makes its own)")


def is_abandoned(folder: str) -> bool:
    """Whether no process of the server that made `folder` lives: an exclusive flock on its alive file is had at
    once. Where none can be had (no fcntl, ENOLCK, a file that cannot be opened), kept. A folder without the
    file was made by the hfspeech before it (never released: session 39), which named it by its supervisor's pid
    and held no lock: judged by its pids as that one did, so that its folders are still swept."""
    try:
        handle = open(Path(folder) / ALIVE_FILE, "r+b")  # writable: NFS locks an exclusive flock as a write
    except FileNotFoundError:
        return not any(process_alive(pid) for pid in folder_pids(folder))
    except OSError:
        return False
    with handle:  # released before the folder goes: nobody alive holds it, so nobody can take it again
        return lock_taken(handle) is True  # False: held; None: no locks here (no fcntl, ENOLCK)


def folder_pids(folder: str) -> list[int]:
    """The supervisor's pid in the folder's name, and its workers' in their file names."""
    match = OWN_NAME.fullmatch(Path(folder).name)
    return [int(match[1])] + [pid for name in os.listdir(folder) if (pid := file_pid(name))]


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
            if pid is not None and not process_alive(pid):
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
    """This user's hfspeech metrics folders in the temporary folder that no supervisor or worker holds alive
    (`is_abandoned`): removed, their names returned. Never another user's folder, nor a link, nor a folder named
    otherwise."""
    if not hasattr(os, "getuid"):  # Windows: no owners to tell apart this way
        return []
    removed = []
    with os.scandir(parent or tempfile.gettempdir()) as entries:
        for entry in entries:
            try:
                if not OWN_NAME.fullmatch(entry.name) or not entry.is_dir(follow_symlinks=False) or \
                        entry.stat(follow_symlinks=False).st_uid != os.getuid() or not is_abandoned(entry.path):
                    continue
            except OSError:  # gone meanwhile, or not ours to read
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
    return removed
