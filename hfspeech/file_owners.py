"""Whose a file is, said where it matters to a team sharing folders: a refusal names the user who owns the folder
(or file) and its mode, and whom to ask; the folders hfspeech makes for itself get the modes the umask gives.

"cannot write (Permission denied); make it writable" told alice nothing she could do about bob's export: only bob
may chmod it. A scratch folder made 0700 (`tempfile.mkdtemp`) whatever the umask could not be swept by a teammate
once its run was killed, nor could the earlier output it held be put back. No `pwd` (Windows): today's wording.

Bottom layer: imports only `errors` at load (`access_refusal` takes `output_folders` and `path_names`, both bottom,
when it is called); any stage may import it. `FolderNotWritableError` is here, for `output_folders` to stay short.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from hfspeech.errors import HfspeechError, OutputWriteError, first_in_chain


class FolderNotWritableError(OutputWriteError, PermissionError):
    """An output's folder this user may not write into (`output_folders.not_writable`): a `PermissionError` still,
    which `output_staging.written_beside` falls back on."""

    def __str__(self) -> str:
        return self.strerror  # the whole line: `out: cannot write in rodir (Permission denied); ...`, no errno


@dataclass(frozen=True)
class Owner:
    """Another user's file or folder, as a refusal words it."""
    name: str  # the user's name, or the uid where no passwd entry names it
    mode: str  # `drwxr-sr-x`, as `ls -l` writes it
    shares_group: bool  # this user is in its group: group-writable would let this user in
    is_folder: bool

    @property
    def belongs(self) -> str:
        return f"it belongs to {self.name}, {self.mode}"

    @property
    def ask_for_writing(self) -> str:
        if self.shares_group:
            return f"ask {self.name} to make it group-writable (chmod{' -R' * self.is_folder} g+w)"
        return f"ask {self.name} to let this user write there"


def another_users(path: Optional[str | os.PathLike]) -> Optional[Owner]:
    """`path`'s owner where it is not this process's user; None for this user's own, a path that cannot be looked
    at (or None), or where there are no users to name (no `pwd`: Windows)."""
    try:
        import pwd
    except ImportError:
        return None
    try:
        status = os.stat(path)
    except (OSError, TypeError):
        return None
    if status.st_uid == os.geteuid():
        return None
    try:
        name = pwd.getpwuid(status.st_uid).pw_name
    except KeyError:
        name = f"uid {status.st_uid}"  # no passwd entry: `ask 4242 to ...` read as a count
    groups = {os.getegid(), *os.getgroups()}
    return Owner(name, stat.filemode(status.st_mode), status.st_gid in groups, stat.S_ISDIR(status.st_mode))


def refusing_entry(path: str | os.PathLike) -> Optional[Path]:
    """What refused a write to `path`: `path` itself where it exists and this user may not write it, else the
    nearest folder on its way that exists and may not be written (where it would be made); None if none."""
    existing = [entry for entry in (Path(path), *Path(path).parents) if os.path.lexists(entry)]
    return next((entry for entry in existing if not os.access(entry, os.W_OK)), None)


def refused_write(folder: str | os.PathLike, reason: str, elsewhere: str) -> str:
    """`(Permission denied); make it writable, or ELSEWHERE` for a write `folder` refused; where the folder is
    another user's, `(Permission denied: it belongs to bob, drwxr-sr-x); ask bob to make it group-writable (chmod -R
    g+w), or ELSEWHERE`: the one wording of `output_folders.not_writable` and of the scratch folder beside an output."""
    reason, remedy = reason_and_remedy(folder, reason)
    return f"({reason}); {remedy}, or {elsewhere}"


def reason_and_remedy(path: Optional[str | os.PathLike], reason: str) -> tuple[str, str]:
    """For `errors.cannot_write`: the reason and "make it writable", or for a write another user's folder or file
    refused (`refusing_entry`), `Permission denied: it belongs to bob, -rw-r--r--` and whom to ask."""
    owner = another_users(refusing_entry(path)) if path and reason == os.strerror(errno.EACCES) else None
    return (f"{reason}: {owner.belongs}", owner.ask_for_writing) if owner else (reason, "make it writable")


def process_umask() -> int:
    """This process's umask, read without changing it where Linux says it (`/proc/self/status`): `os.umask`'s
    set-and-restore is process-wide, and a thread making a file in between would get the wrong mode."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            line = next((line for line in status if line.startswith("Umask:")), "")
        return int(line.split()[1], 8)
    except (OSError, IndexError, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def with_umask_mode(folder: str | os.PathLike) -> None:
    """Give a folder `tempfile.mkdtemp` made (always 0700) the mode a plain `mkdir` would, `0o777 & ~umask`,
    keeping the setgid bit a shared folder passed on: a teammate's run may then sweep it once its run is killed,
    and put back the earlier output it held. Where the mode cannot be changed it stays as it was."""
    try:
        inherited = os.stat(folder).st_mode & stat.S_ISGID
        os.chmod(folder, (0o777 & ~process_umask()) | inherited)
    except OSError:
        pass


def access_refusal(error: BaseException) -> Optional[HfspeechError]:
    """A file or folder this user may not read or write (EACCES, EPERM: a 555 output folder, a 000 input, as a
    container's non-root user meets them) as an `HfspeechError` of one line naming it, where the command did not say
    so itself, and naming its owner where it is another user's: it was a traceback (`errors.WRITE_ERRNOS` leaves out
    EACCES, which a read raises too), and `serve` printed `PermissionError: [Errno 13] ...`. A write where the folder
    it would be made in refuses it (`output_folders.not_writable`), a read of what this user may write but not read;
    where the two cannot be told apart, the path and the reason plainly. None for any other error."""
    from hfspeech.output_folders import not_writable
    from hfspeech.path_names import shown_name

    error = first_in_chain(error, lambda each: isinstance(each, OSError) and each.errno in (errno.EACCES, errno.EPERM)
                           and each.filename is not None)
    if error is None:
        return None
    path = os.fsdecode(error.filename)
    if not os.path.lexists(path):  # being made (its folder refusing), or out of reach (a folder above not searchable)
        problem = not_writable(path) if os.access(os.path.dirname(path) or ".", os.X_OK) else None
    elif not os.access(path, os.R_OK):
        problem = f"cannot be read ({error.strerror})" if os.access(path, os.W_OK) else None
    else:
        problem = not_writable(path)
    owner = None if problem else another_users(path)
    reason = f"{error.strerror} ({owner.belongs}); ask {owner.name} to" if owner else f"{error.strerror};"
    return HfspeechError(f"{shown_name(path)}: " + (problem or f"{reason} give this user access to it (and to the "
                                                    "folders above it), or use another path"))


_warned_left_behind: set[str] = set()  # the leftovers `warn_left_behind` named, once a process


def warn_left_behind(scratch: str | os.PathLike, killed: bool) -> None:
    """A warning, once a process, naming another user's scratch folder a sweep could not remove (`killed`: its
    run is gone, no lock held; else it could not even be looked into, a 0700 one): it was left without a word, and
    `rm -rf` refused it. Nothing for this user's own (a read-only disk: kept as before)."""
    owner = another_users(scratch)
    if owner is None or str(scratch) in _warned_left_behind:
        return
    _warned_left_behind.add(str(scratch))
    from hfspeech.output_folders import SET_ASIDE

    whose = f"a killed run of {owner.name}'s" if killed else f"a run of {owner.name}'s (running, or killed)"
    when = "" if killed else f"if no run of {owner.name}'s writes there, "
    what = "to remove it"
    if killed and os.path.lexists(os.path.join(scratch, SET_ASIDE)):  # the earlier output's only copy: not to delete
        what = "to run the same command again, which puts back the earlier output it holds"
    logging.getLogger("hfspeech.output_folders").warning(
        "warning: %s: left by %s (%s), and this user may not remove it; %sask %s %s", scratch, whose, owner.mode,
        when, owner.name, what)
