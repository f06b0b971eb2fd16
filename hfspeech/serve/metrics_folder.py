"""The multiprocess metrics folder of a `--workers N` server, kept from growing, and kept, for as long as it runs.

prometheus_client's multiprocess mode (`metrics.py`) has each worker write its samples to files named by its pid
(`counter_<pid>.db`, `histogram_<pid>.db`) in one folder, and keeps a dead worker's files: its counts still belong
in the server's totals. Two leaks followed. Each worker uvicorn restarted (one died, or SIGHUP replaced them all)
left its 2 files for good, and every scrape read them all; and a supervisor that was SIGKILLed (the OOM killer,
`kill -9`) never removed its folder from the temporary folder.

- `dead_workers_merged(folder)`: each worker as it starts, and each scrape (SIGHUP starts the new workers before
  it stops the old ones), adds the dead workers' counts into one file per type (`counter_dead.db`,
  `histogram_dead.db`) and removes theirs, so that a kill at any point neither loses nor doubles a count
  (`metrics_merge.py`). Under a lock that `/metrics` takes too (`scrape_lock`).
- `remove_orphaned_folders()`: a supervisor, starting, removes this user's hfspeech folders whose supervisor and
  workers are all gone (`is_abandoned`), and the `.hfspeech-metrics-new-*` folders of supervisors killed while
  they made theirs (`new_folder_kept_alive`). Gone is told by locks, not by pids: pids meant nothing across pid
  namespaces (two containers sharing /tmp, a TMPDIR on NFS used by several hosts: each server saw the other's
  pids as dead and removed a live server's folder), and in a container the supervisor is often pid 1, always
  "alive".

What protects what. The supervisor (`new_folder_kept_alive`) and each worker (`keep_alive_while_this_process_lives`)
hold, for as long as they live (the kernel drops them however they die), two shared flocks:
- one on the folder itself: systemd-tmpfiles (its default ages /tmp's entries out after 10 days unused) takes an
  exclusive `flock(LOCK_EX|LOCK_NB)` on each folder before it ages it and skips the folder, its files and its own
  removal, when that fails (tmpfiles.d(5); `dir_cleanup` in its source; checked with systemd 252's
  `systemd-tmpfiles --clean`). Before, the alive file was never written after its creation, and a server up
  10 days lost it (then judged by pids again), or its whole folder when it was idle. It is the sweep's first test
  too: a folder held so is alive, whatever became of its alive file.
- one on the folder's `.hfspeech-alive.lock`: the test that works across NFS hosts (NFS locks a file for all of
  them; a folder's flock stays on the host that took it, Linux's NFS client having no flock of folders: read,
  not tried) and against the hfspeech of session 39, which took only this one. A merge (each scrape, each worker
  start) touches it and every other file of the folder, so that cleaners that honour no lock and age files by
  their times (tmpwatch, tmpreaper) find them in use.

Only folders hfspeech named are touched: a folder the user chose (PROMETHEUS_MULTIPROC_DIR) is theirs.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Optional

from hfspeech.folder_writers import flock_within, process_alive
from hfspeech.output_folders import lock_taken
from hfspeech.serve.metrics_merge import file_pid, folder_lock, merge_dead_files

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess folder
METRICS_PREFIX = "hfspeech-metrics-"
STARTING_PREFIX = ".hfspeech-metrics-new-"  # a folder not yet held alive: swept only once surely left behind
OWN_NAME = re.compile(METRICS_PREFIX + r"(\d+)-[A-Za-z0-9_]+")  # `folder_prefix(pid)` + mkdtemp's part
STARTING_NAME = re.compile(re.escape(STARTING_PREFIX) + r"[A-Za-z0-9_]+")
STARTING_GRACE_SECONDS = 3600  # a `-new-` folder nobody holds, younger: its maker may be about to lock it
ALIVE_FILE = ".hfspeech-alive.lock"  # held (shared) by the supervisor and each worker for as long as it lives
held_for_life: list = []  # this worker's locks on its server's folder, released by the kernel when it exits


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


def shared_lock_on_folder(folder: Path) -> Optional[int]:
    """An open descriptor of `folder` holding a shared flock on the folder itself, or None where none can be had
    (no fcntl, no such folder, a file system without locks on folders). systemd-tmpfiles, and a sweep, hold an
    exclusive one a moment while they look at a folder: waited for, a second at most."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None
    if flock_within(descriptor, exclusive=False, seconds=1.0, poll=0.01):
        return descriptor
    os.close(descriptor)
    return None


def folder_held_alive(folder: Path) -> list[Callable[[], None]]:
    """Both locks that keep `folder` alive (see the module's docstring), each as the call that lets it go."""
    held = []
    descriptor = shared_lock_on_folder(folder)
    if descriptor is not None:
        held.append(partial(os.close, descriptor))
    handle = shared_lock_on(folder / ALIVE_FILE, create=True)
    if handle:
        held.append(handle.close)
    return held


@contextmanager
def new_folder_kept_alive() -> Iterator[str]:
    """A fresh metrics folder in the temporary folder, named `folder_prefix(<this pid>)` + mkdtemp's random part,
    held alive until the block ends, then removed. Made under a name the sweep judges apart (`is_abandoned`) and
    renamed once its locks are held, so that no other server ever finds it named and not held."""
    starting = Path(tempfile.mkdtemp(prefix=STARTING_PREFIX))
    held = folder_held_alive(starting)
    folder = starting.with_name(folder_prefix(os.getpid()) + starting.name[len(STARTING_PREFIX):])
    try:
        starting.rename(folder)
        yield str(folder)
    finally:
        for let_go in held:
            let_go()
        for path in (starting, folder):
            shutil.rmtree(path, ignore_errors=True)


def keep_alive_while_this_process_lives(folder) -> None:
    """A worker's locks on its server's folder, held until it exits: a SIGKILLed supervisor's workers serve on and
    write there, and their locks keep the folder from the next server's sweep. A folder removed under the server
    (a cleaner of /tmp, `rm -rf`) is made again: each restarted worker died opening its metric files there, and
    uvicorn started it again, forever (reviewer R4: 49 tracebacks in 25 s)."""
    if folder and is_own_folder(folder):
        with contextlib.suppress(OSError):  # (unwritable: the metrics' own error says it)
            os.makedirs(folder, exist_ok=True)
        held_for_life.extend(folder_held_alive(Path(folder)))


def check_users_folder() -> None:
    """A PROMETHEUS_MULTIPROC_DIR of the user's that is no folder: one line before any worker starts (each worker
    died with a traceback, and the supervisor hung on its defunct workers, deaf to SIGTERM: reviewer R4)."""
    folder = os.environ.get(METRICS_DIR_ENV)
    if folder and not os.path.isdir(folder):
        from hfspeech.errors import UsageError

        raise UsageError(f"{METRICS_DIR_ENV}={folder}: no such folder; make it, or unset the variable (a server "
                         "with --workers makes its own)")


def is_abandoned(folder: str) -> bool:
    """Whether no process of the server that made `folder` lives: nobody holds the folder's own lock, and an
    exclusive flock on its alive file is had at once. Where the alive file's lock cannot be had (no fcntl, ENOLCK,
    a file that cannot be opened), kept. A `-new-` folder nobody holds is still its maker's for
    STARTING_GRACE_SECONDS after its last change: it is made (mkdtemp), then its file, then both are locked, and a
    sweep in between finds it held by nobody. A named folder without the file was made by an hfspeech older than
    session 39's, which named it by its supervisor's pid and held no lock: judged by its pids as that one did, so
    that its folders are still swept."""
    if folder_held_by_another(folder):
        return False
    starting = STARTING_NAME.fullmatch(Path(folder).name) is not None
    if starting and time.time() - os.stat(folder).st_mtime < STARTING_GRACE_SECONDS:
        return False  # its maker may be between mkdtemp and its locks
    try:
        handle = open(Path(folder) / ALIVE_FILE, "r+b")  # writable: NFS locks an exclusive flock as a write
    except FileNotFoundError:
        return starting or not any(process_alive(pid) for pid in folder_pids(folder))
    except OSError:
        return False
    with handle:  # released before the folder goes: nobody alive holds it, so nobody can take it again
        return lock_taken(handle) is True  # False: held; None: no locks here (no fcntl, ENOLCK)


def folder_held_by_another(folder: str) -> bool:
    """Whether a process holds a flock on the folder itself (a server of this hfspeech, or systemd-tmpfiles a
    moment). False where folders cannot be locked: the alive file decides."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return False
    try:
        return lock_taken(descriptor) is False
    finally:
        os.close(descriptor)


def folder_pids(folder: str) -> list[int]:
    """The supervisor's pid in the folder's name, and its workers' in their file names."""
    match = OWN_NAME.fullmatch(Path(folder).name)
    return [int(match[1])] + [pid for name in os.listdir(folder) if (pid := file_pid(name))]


def kept_fresh(folder: Path) -> None:
    """Every file's times set to now: a cleaner that honours no lock (tmpwatch, tmpreaper) ages a file by its
    times, and a lock file is never written after its creation, nor the merged totals, nor an idle worker's
    counts, between merges (reviewer R1)."""
    with contextlib.suppress(OSError):  # gone: nothing to keep
        for entry in os.scandir(folder):
            with contextlib.suppress(OSError):  # gone meanwhile
                os.utime(entry.path, follow_symlinks=False)


def scrape_lock(folder):
    """What `/metrics` holds while it reads the folder: the merge lock of hfspeech's own folders."""
    return folder_lock(folder, shared=True) if folder and is_own_folder(folder) else nullcontext()


def dead_workers_merged(folder) -> None:
    """The files of the folder's dead processes merged into one per type (see the module's docstring)."""
    if not folder or not is_own_folder(folder) or not Path(folder).is_dir():
        return
    kept_fresh(Path(folder))
    merge_dead_files(Path(folder))


def remove_orphaned_folders(parent: Optional[str] = None) -> list[str]:
    """This user's hfspeech metrics folders in the temporary folder that no supervisor or worker holds alive
    (`is_abandoned`), and those left half made: removed, their names returned. Never another user's folder, nor
    a link, nor a folder named otherwise."""
    if not hasattr(os, "getuid"):  # Windows: no owners to tell apart this way
        return []
    removed = []
    with os.scandir(parent or tempfile.gettempdir()) as entries:
        for entry in entries:
            named = OWN_NAME.fullmatch(entry.name) or STARTING_NAME.fullmatch(entry.name)
            try:
                if not named or not entry.is_dir(follow_symlinks=False) or \
                        entry.stat(follow_symlinks=False).st_uid != os.getuid() or not is_abandoned(entry.path):
                    continue
            except OSError:  # gone meanwhile, or not ours to read
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
    return removed
