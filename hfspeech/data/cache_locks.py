"""The lock files of a cache folder (`data.cache_users`): opened so that every user of a shared cache can lock them,
and the gate behind which a run tries the folder's lock exclusively.

Bottom layer: imports `folder_writers`' `flock_within` only.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Iterator, Optional

from hfspeech.folder_writers import flock_within

logger = logging.getLogger("hfspeech.data")

GATE_NAME = ".hfspeech-cache-users.gate"  # held while a run tries the folder's lock exclusively
GATE_WAIT = 5.0  # seconds a run waits for another's exclusive try: one sweep of a folder's `tmp*` files at most


@contextlib.contextmanager
def exclusive_tries_gated(folder: Path) -> Iterator[bool]:
    """Inside, whether this process alone may try `folder`'s lock exclusively (`GATE_NAME` held, waited for
    `GATE_WAIT` s at most). Linux turns a shared flock into an exclusive one by letting go of the shared one first,
    and a refused try leaves none: two runs holding a folder and trying at once each let the other's try through,
    and 13,145 of 20,000 `held_alone` checks said "alone" beside a live run (reviewer R1). Every exclusive try (the
    sweep at a run's start, `held_alone`, a failed write's clean-up) is made inside: one at a time, so a run is
    without its shared lock only while no other can try."""
    try:
        import fcntl  # noqa: F401 (only asked whether there are locks here)
    except ImportError:  # Windows: no locks, no tries, no gate file
        yield False
        return
    handle = open_lock_file(folder / GATE_NAME)
    try:
        yield handle is not None and _gate_taken(handle, folder)
    finally:  # (a Ctrl-C while waiting for the gate included)
        if handle is not None:
            os.close(handle)


def _gate_taken(handle: int, folder: Path) -> bool:
    """The gate's exclusive lock taken within `GATE_WAIT` s; said once where another run (a stopped one) kept it;
    never where there are no locks (Windows, ENOLCK): no try is safe there."""
    taken = flock_within(handle, exclusive=True, seconds=GATE_WAIT, poll=0.005)
    if taken is False:
        logger.warning("data: %s is being checked by another run (stopped?) for over %.0f s; going on without "
                       "removing anything there", folder, GATE_WAIT)
    return bool(taken)


def open_lock_file(path: Path) -> Optional[int]:
    """The lock file opened (made when missing, in a folder made when missing: `datasets` makes it anyway); read-only
    when another user's; None when it cannot be opened at all (a read-only cache: this run writes nothing there).
    Made writable by its group whatever the umask: in a group-shared cache, other users open it read-write, which
    NFS needs for an exclusive lock (not by everyone: nobody outside the group writes that cache)."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o664)
        with contextlib.suppress(OSError, AttributeError):  # no modes (FAT, some SMB), no fchmod (Windows): as it is
            os.fchmod(handle, 0o664)  # the group's runs lock it too (a group-shared cache)
        return handle
    for flags in (os.O_RDWR, os.O_RDONLY):
        with contextlib.suppress(OSError):
            return os.open(path, flags)
    return None
