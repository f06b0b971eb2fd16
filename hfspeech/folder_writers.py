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
call: a writer taking its folder in that instant is refused as if another writer held it (`held_alone`'s "in use").
A hold of this very process (`train` checking the folder it holds as the model to start from) is not another
writer's: Linux's /proc/locks names the holder (`held_here_alone`); elsewhere it counts as another's.

Bottom layer: imports nothing from hfspeech; any stage may import it.
"""

from __future__ import annotations

import os
from typing import Callable, Optional


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
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            if held_here_alone(handle):  # this process's own hold (another descriptor): not another writer
                return False
            if wait is not None:
                wait()
                fcntl.flock(handle, fcntl.LOCK_SH)
            return True
        except OSError:  # EBADF (NFS on a folder), ENOLCK: no lock to be had
            return False
        return False
    finally:
        os.close(handle)  # lets go of the shared lock


def held_here_alone(handle: int) -> bool:
    """Whether every `flock` on `handle`'s file is this process's (Linux's /proc/locks names each holder): a lock
    refuses another descriptor of the same process too, so `train --model_name_or_path RUN --output_dir RUN` (RUN
    not a model), holding RUN itself, was told a training run was writing it. False where it cannot tell (no
    /proc/locks: macOS; a file system whose locks name another device, overlayfs): counted as another's."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as table:
            rows = table.read().splitlines()
    except OSError:
        return False
    status = os.fstat(handle)
    inode = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    holders = {fields[-4] for fields in map(str.split, rows)
               if len(fields) >= 8 and fields[-7] == "FLOCK" and fields[-3] == inode and "->" not in fields}
    return holders == {str(os.getpid())}
