"""Is another process writing this folder now? Asked before a reader tells the user something about the folder.

A writer holds its folder with an exclusive `flock` for as long as it writes: `train` (and `average`) its output
folder for the whole run (`output_folders.held_alone`), `hfspeech pretrained` the cache folder while it converts
(`models.whisper.pretrained.converting_alone`). A reader that found no model there told the user the run had
stopped ("resume with --resume_from_checkpoint") while it was still in its first epoch, and `train
--model_name_or_path whisper-tiny.en` said "run `hfspeech pretrained whisper-tiny.en`" while that very command was
converting it. A shared, non-blocking `flock` on the folder tells: refused while a writer holds it, taken at once
(and let go at once) otherwise; two readers never stand in each other's way.

Where no lock is to be had (no `fcntl`: Windows; a file system without locks: NFS; no such folder) nothing is being
written as far as anyone can tell: False, and a reader says what it said before. The probe's lock lasts a system
call: a writer taking its folder in that instant was refused as if another writer held it (`held_alone`'s "in use",
9% of 20,000 starts beside a tight probe loop); it now tells the readers' shared hold from a writer's and waits the
readers out (`taken_past_readers`). A hold of this very process (`train` checking the folder it holds as the model
to start from, or tracing its TorchScript twin at the end) is not another writer's: the holders note their folders
here (`noted_as_held`). Read from Linux's /proc/locks instead, a btrfs folder (whose `stat` device is not the one
/proc/locks names) and every folder on macOS (no /proc/locks) counted as another's: each `train` of a baseline lost
its twin to "a training run is writing this folder now".

Bottom layer: imports nothing from hfspeech; any stage may import it.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Callable, Iterator, Optional

# (device, inode) of each folder this process holds with an exclusive `flock` (`noted_as_held`)
_held_here: set[tuple[int, int]] = set()
READERS_PATIENCE_S = 2.0  # how long a writer waits out readers' probes before it gives up: they never pause so long
READERS_POLL_S = 0.005


def being_written(folder: str | os.PathLike) -> bool:
    """True while another process holds `folder` with an exclusive `flock` (a training run writing its output folder);
    False where no one does, or where no lock can be had (Windows, NFS, no such folder)."""
    return _probed(folder, wait=None)


def wait_while_written(folder: str | os.PathLike, waiting: Callable[[], None]) -> bool:
    """Where another process holds `folder` exclusively, call `waiting` (to say so) and block until it lets go; True
    when it waited. Returns at once, False, where no one holds it or no lock can be had."""
    return _probed(folder, wait=waiting)


def _probed(folder: str | os.PathLike, wait: Optional[Callable[[], None]]) -> bool:
    """A shared non-blocking `flock` on `folder`, let go at once; refused: a writer holds it (then, with `wait`,
    a blocking one, taken once the writer ends)."""
    try:
        import fcntl
    except ImportError:  # Windows
        return False
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # no such folder, or one this user may not open: nothing this process can tell
        return False
    try:
        status = os.fstat(handle)
        if (status.st_dev, status.st_ino) in _held_here:  # this process's own hold (another descriptor)
            return False
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            if wait is not None:
                wait()
                fcntl.flock(handle, fcntl.LOCK_SH)
            return True
        except OSError:  # EBADF (NFS on a folder), ENOLCK: no lock to be had
            return False
        return False
    finally:
        os.close(handle)  # lets go of the shared lock


def taken_past_readers(handle: int, take: Callable[[], Optional[bool]]) -> Optional[bool]:
    """`take()`, an exclusive non-blocking `flock` on `handle` (True taken, False refused, None no lock to be had),
    tried again while readers alone refuse it: a reader's probe holds its shared lock for one system call, and a
    `train` starting in that instant was refused "in use". A writer's refusal stands at once (no wait on a run that
    trains for hours); readers probing without pause keep it at most `READERS_PATIENCE_S`. Only for a lock whose
    shared holders are such probes (the folders `being_written` asks about: `held_alone`'s, the pretrained cache):
    where a shared lock is held for a life (`data.cache_users`' lock file, a server's alive file) each exclusive try
    would wait the whole 2 s behind a live holder, then be refused as before."""
    taken, deadline = take(), time.monotonic() + READERS_PATIENCE_S
    while taken is False and only_readers_hold(handle) and time.monotonic() < deadline:
        time.sleep(READERS_POLL_S)
        taken = take()
    return taken


def only_readers_hold(handle: int) -> bool:
    """Whether no process holds `handle`'s file exclusively: a shared non-blocking `flock` on it is taken (and let
    go at once). After an exclusive one was refused: the holders are readers (`being_written`'s probes)."""
    import fcntl

    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:  # a writer holds it (or no lock to be had)
        return False
    fcntl.flock(handle, fcntl.LOCK_UN)
    return True


@contextlib.contextmanager
def noted_as_held(handle: int) -> Iterator[None]:
    """The folder open as `handle`, which this process holds with an exclusive `flock`, known as its own while the
    block runs: `being_written` then answers False for it in this process (a lock refuses another descriptor of the
    same process too)."""
    status = os.fstat(handle)
    key = (status.st_dev, status.st_ino)
    _held_here.add(key)
    try:
        yield
    finally:
        _held_here.discard(key)


def process_alive(pid: int) -> bool:
    """Whether a process `pid` exists here (another user's too). Windows, and pid 0 or below (os.kill would signal a
    process group), never judged gone."""
    if os.name == "nt" or pid <= 0:  # signal 0 is CTRL_C_EVENT on Windows: never sent; kept as alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's (EPERM): alive
        return True
    return True


def flock_within(handle, exclusive: bool, seconds: float, poll: float) -> Optional[bool]:
    """A non-blocking `flock` on `handle` (exclusive, or shared) tried every `poll` s until taken or `seconds` have
    passed: True taken, False still refused (another process holds it: a stopped one, perhaps), None where there is
    no lock to be had (no fcntl: Windows; ENOLCK). A blocking `flock` would never end behind a stopped process."""
    try:
        import fcntl
    except ImportError:
        return None
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(handle, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        except OSError:  # ENOLCK, EBADF
            return None

