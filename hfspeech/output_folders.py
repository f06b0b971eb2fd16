"""The one rule for where a command may write: a folder that is new, empty, or holds an earlier output of
the same command, which writing again replaces.

Training, averaging, staging, exporting, evaluating and `tiny-model` all write fixed names (config.json,
model.safetensors, data_report.json ...) into a folder the user names. Given a folder of the user's (a data
set, notes, another tool's model) they would overwrite its files without a word, or mix theirs in. Each
command passes what marks its own earlier output (`ours`); everything else present is the user's.

The locked `.NAME-partial-*` scratch folders written beside an output, and the sweep of those a killed run left,
are here too (`hfspeech.output_staging.written_beside`, `data.whole_folders`). The bottom layer, as `errors`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Optional

from hfspeech.errors import HfspeechError, UsageError, first_few
from hfspeech.file_owners import FolderNotWritableError, refused_write, warn_left_behind, with_umask_mode
from hfspeech.folder_writers import noted_as_held, taken_past_readers
from hfspeech.path_names import NOT_UTF8, shown_name, unusable_name

_unlocked_warned: list[str] = []  # the folder `lock_taken` warned of, once a process
# Files a desktop puts in a folder it opened, no files of the user's (not .ipynb_checkpoints: a notebook's copies).
SYSTEM_LITTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def nothing_is_ours(name: str) -> bool:  # for commands that write only into a new folder (staging, tiny-model)
    return False


def users_files(folder: str | os.PathLike, ours: Callable[[str], bool] = nothing_is_ours) -> Optional[str]:
    """Why writing into `folder` could damage what the user keeps there, or None when it is new, empty, or
    holds something `ours` recognises (a name the command itself writes: an earlier output of it)."""
    path = Path(folder)
    if not path.is_dir():
        return not_a_folder(path)
    names = sorted(entry.name for entry in path.iterdir() if entry.name not in SYSTEM_LITTER)
    if not names or any(ours(name) for name in names):
        return None
    return f"holds other files ({first_few(names)})"


def not_a_folder(folder: str | os.PathLike) -> Optional[str]:
    """Why `folder` cannot be made a folder, or None when it is one or can be created: it is a file, or a file is
    in its path (`notes.txt/out`), or it is a link to nothing (creating it fails: FileExistsError). The first
    check of every output folder, strict (`hfspeech stage`) or not."""
    path = Path(folder)
    if path.is_symlink() and not path.exists():
        return f"is a link to {os.readlink(path)}, which does not exist"
    if not path.exists():
        blocker = file_in_the_way(path)
        return f"is inside {blocker}, a file, not a folder" if blocker is not None else None
    return None if path.is_dir() else "is a file, not a folder"


def names_not_ours(folder: str | os.PathLike, ours: Callable[[str], bool] = nothing_is_ours) -> list[str]:
    """The strict reading, sorted: every name in the existing folder `folder` that `ours` does not recognise.
    `users_files` accepts a folder once one name is ours (the command writes over its own names); a command
    that empties the folder before it writes (`hfspeech stage`) must recognise each."""
    return sorted(entry.name for entry in Path(folder).iterdir() if not ours(entry.name))


def file_in_the_way(path: str | os.PathLike) -> Optional[Path]:
    """The nearest existing parent of the missing `path` when it is a file (`notes.txt/out`), where creating
    the folders would stop: found before any work, not as a FileExistsError after it."""
    blocker = next((parent for parent in Path(path).parents if parent.exists()), None)
    return blocker if blocker is not None and not blocker.is_dir() else None


def unusable_folder_name(folder: str | os.PathLike) -> Optional[str]:
    """Why nothing written into `folder` could be loaded from it, or None: a name that is not UTF-8 (`out\\xe9`; a
    training run ended on safetensors' "Path ... is not valid UTF-8" after all its epochs, an export on a torch
    traceback) or, under an ASCII locale, not ASCII (`path_names.unusable_name`). The first check of every
    folder a command writes a model or an export into (`model=True`, `held_alone`); evaluate's reports are
    written to such a name, and read from it, as well as to any other."""
    problem = unusable_name(folder)
    if problem is None or not problem.startswith(NOT_UTF8):
        return problem
    return (f"{NOT_UTF8}, and a model or export written there could not be loaded (safetensors and onnxruntime take "
            "UTF-8 paths only); give a folder whose name is UTF-8")


def output_folder_problem(folder: str | os.PathLike, ours: Callable[[str], bool] = nothing_is_ours,
                          earlier: str = "", remedy: str = "", model: bool = False) -> Optional[str]:
    """What is wrong and what to do, for a one-line error after "FOLDER: ", or None when `folder` may be
    written. `earlier` names what `ours` recognises ("an earlier export"); `remedy` adds a way out
    ("or pass --overwrite_output_dir to write over them"); `model`: a model or export will be loaded from it, so its
    name must be one the loaders take (`unusable_folder_name`; reports and JSON are written to any name)."""
    if model and (unusable := unusable_folder_name(folder)) is not None:
        return unusable
    problem = users_files(folder, ours)
    if problem is None:
        return not_writable(folder)
    if not problem.startswith("holds"):
        return f"{problem}; give a new or empty folder"
    not_ours, way_out = (f", not {earlier}" if earlier else ""), (f", {remedy}" if remedy else "")
    return f"{problem}{not_ours}; give a new or empty folder{way_out}"


def not_writable(path: str | os.PathLike, elsewhere: str = "write elsewhere") -> Optional[str]:
    """`cannot write in rodir (Permission denied); make it writable, or write elsewhere` when this user may not
    write into `path`, or into the nearest folder that exists on its way, where it would be made; else None. A
    container's non-root user (a 555 folder, another user's 755 one) found it only as a PermissionError traceback,
    after the work; root's override of file modes makes this None, as the write itself would succeed."""
    existing = next((folder for folder in (Path(path), *Path(path).parents) if os.path.lexists(folder)), None)
    if existing is None or not existing.is_dir() or os.access(existing, os.W_OK | os.X_OK):
        return None
    read_only = hasattr(os, "statvfs") and os.statvfs(existing).f_flag & os.ST_RDONLY
    where = "" if existing == Path(path) else f" in {shown_name(existing)}"
    reason = os.strerror(errno.EROFS if read_only else errno.EACCES)
    return f"cannot write{where} {refused_write(existing, reason, elsewhere)}"  # another user's: named, and whom to ask


def check_output_folder(folder: str | os.PathLike, flag: str = "", ours: Callable[[str], bool] = nothing_is_ours,
                        earlier: str = "", remedy: str = "", error: type[HfspeechError] = UsageError,
                        model: bool = False) -> None:
    """Raise `error` naming the flag and the folder when `output_folder_problem` finds one."""
    problem = output_folder_problem(folder, ours, earlier, remedy, model)
    if problem is not None:
        raise error(folder_named(folder, flag, problem))


def folder_named(folder: str | os.PathLike, flag: str, problem: str) -> str:
    """The one-line refusal `FLAG FOLDER: PROBLEM` (no flag: `FOLDER: PROBLEM`), the folder as `shown_name` shows it."""
    return f"{flag} {shown_name(folder)}: {problem}" if flag else f"{shown_name(folder)}: {problem}"


@contextlib.contextmanager
def held_alone(folder: str | os.PathLike, refusal: str, flag: str = "") -> Iterator[None]:
    """Hold `folder` for this process until the block ends, or raise `UsageError("FLAG FOLDER: REFUSAL")` when another
    process holds it: two `hfspeech train` into one --output_dir both started (or resumed), wrote their checkpoints
    side by side, and one deleted the checkpoint the other was saving as "incomplete". An advisory `flock` on the
    folder itself (no lock file left among the outputs, released when the process dies); the folders created for it
    and still empty at the end are removed. No-op where no lock is to be had (`lock_taken`: Windows; NFS, warned) or
    the folder cannot be made or opened (a file in the way: the command's own check says so). Its holders (`train`,
    `average`) write a model there: a name no model loads from (`unusable_folder_name`) is refused first, as `train`
    holds its folder before it checks it (and with --overwrite_output_dir never does)."""
    if (unusable := unusable_folder_name(folder)) is not None:
        raise UsageError(folder_named(folder, flag, unusable))
    created = [path for path in (Path(folder), *Path(folder).parents) if not path.exists()]  # deepest first
    handle = None
    if os.name != "nt" and not_a_folder(folder) is None:
        with contextlib.suppress(OSError):  # a read-only parent: the command's own first write says so
            os.makedirs(folder, exist_ok=True)
            handle = os.open(folder, os.O_RDONLY)
    if handle is None:
        yield
        return
    try:
        if taken_past_readers(handle, lambda: lock_taken(handle, folder)) is False:  # a reader's probe waited out
            created = []  # the other run's: it may have made them a moment ago
            raise UsageError(folder_named(folder, flag, refusal))
        with noted_as_held(handle):  # this process's own: not "a training run is writing" to its own checks
            yield
    finally:
        os.close(handle)
        for path in created:
            with contextlib.suppress(OSError):  # not empty: kept
                path.rmdir()


def held_by_this_process(handle) -> bool:
    """An advisory `flock` on `handle` (a file or descriptor) until it is closed: False only when another holds it."""
    return lock_taken(handle) is not False


def lock_taken(handle, where: Optional[str | os.PathLike] = None) -> Optional[bool]:
    """A lock taken (True), held by another process (False), none to be had (None: no `fcntl`, Windows; EBADF, NFS
    on a folder; ENOLCK). `where`: the folder it keeps to one run, named once a process in a warning where fcntl
    takes none (on NFS, two `train` into one --output_dir both ran without a word)."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        if where is not None and not _unlocked_warned:
            _unlocked_warned.append(str(where))
            logging.getLogger(__name__).warning("warning: %s: no lock can be taken on this file system (%s): a second "
                                                "run writing there is not refused", shown_name(where), error.strerror)
        return None
    return True


def named_at(error: BaseException, scratch: str | os.PathLike, output_dir: str | os.PathLike) -> BaseException:
    """`error`, its message naming files of `scratch` (a folder written beside its destination, then moved in) by
    the names they have, or would have, in `output_dir`: where the user will look for them."""
    error.args = tuple(arg.replace(str(scratch), str(output_dir)) if isinstance(arg, str) else arg
                       for arg in error.args)
    return error


SET_ASIDE = "earlier"  # in a scratch folder: the earlier output, set aside while the new one is renamed in


def locked_scratch(destination: Path) -> tuple[Path, Optional[int]]:
    """A new `.NAME-partial-*` folder beside `destination` and the descriptor that holds its lock until closed, so
    that another run's `remove_leftover_scratch` keeps it. Made again if another run swept it in the moment between
    its making and its lock. No descriptor on Windows (a folder cannot be opened there; nothing is swept). The
    umask's mode, not mkdtemp's 0700 (`file_owners.with_umask_mode`): in a team's folder a teammate may sweep it."""
    for _ in range(3):
        try:
            scratch = Path(tempfile.mkdtemp(prefix=f".{destination.name}-partial-", dir=destination.parent))
        except PermissionError as error:  # the user's folder named, not the hidden one (`.out-partial-rep7vy6r`)
            problem = f"cannot write in {shown_name(destination.parent)} " \
                      f"{refused_write(destination.parent, error.strerror, 'write elsewhere')}"  # and whose it is
            raise FolderNotWritableError(error.errno, folder_named(destination, "", problem), str(destination)) \
                from None
        with_umask_mode(scratch)  # not mkdtemp's 0700: a teammate's run may sweep it once this one is killed
        if os.name == "nt":
            return scratch, None
        try:
            handle = os.open(scratch, os.O_RDONLY)
        except FileNotFoundError:
            continue
        with contextlib.suppress(FileNotFoundError):
            if lock_taken(handle, destination) is not False and os.path.samestat(os.fstat(handle), os.stat(scratch)):
                return scratch, handle
        os.close(handle)
    raise OSError(f"{destination.parent}: another process removes every folder made there")


def remove_leftover_scratch(destination: str | os.PathLike, follow_link: bool = True) -> None:
    """Remove the `.NAME-partial-*` folders beside `destination` that no process holds: a run killed outright
    (SIGKILL, power loss) cannot remove its own, and they stayed for ever (150 MB for a Whisper conversion). A live
    run's is locked (`locked_scratch`) and kept; so is every one where no lock can be taken (Windows, ENOLCK). One
    killed between setting the earlier output aside and renaming the new one in holds the earlier output's only
    copy: it is put back first (`put_back_set_aside`), and the folder kept if it cannot be. Another user's that this
    user may not remove is named once in a warning (`file_owners.warn_left_behind`): it was kept without a word.
    `follow_link` False: the ones beside a link itself (`output_staging`'s fallback), whose earlier output goes back
    to the link's target."""
    target = real_destination(destination)
    for scratch in scratch_folders(destination, follow_link):
        try:
            handle = os.open(scratch, os.O_RDONLY)
        except OSError:  # removed meanwhile, not to be opened (Windows), or another user's 0700 one: said
            warn_left_behind(scratch, killed=False)
            continue
        try:
            if (held := lock_taken(handle)) and put_back_set_aside(scratch, target):
                shutil.rmtree(scratch, ignore_errors=True)
            if held and os.path.lexists(scratch):  # a killed run's this user may not remove: said, not kept silently
                warn_left_behind(scratch, killed=True)
        finally:
            os.close(handle)


def put_back_set_aside(scratch: Path, destination: Path) -> bool:
    """Put `scratch`'s earlier output (`SET_ASIDE`) back as `destination` where a run stopped before the new one took
    its place; False while `scratch` still holds its only copy (the put-back failed), True when `scratch` may go."""
    set_aside = scratch / SET_ASIDE
    if os.path.lexists(set_aside) and not os.path.lexists(destination):
        with contextlib.suppress(OSError):
            os.replace(set_aside, destination)
    return not os.path.lexists(set_aside) or os.path.lexists(destination)


def real_destination(destination: str | os.PathLike) -> Path:
    """`destination`, or the folder it links to: a link's target is replaced like any folder (written beside the
    target, on its disk, and renamed in whole, the link kept); written through the link file by file, a run stopped
    half-way left some new files beside the earlier ones (a conversion's weights and marker without config.json).
    A link to nothing too: a run killed between its renames left it so, its earlier output in a scratch folder
    beside the target, where the next run's sweep must look to put it back."""
    destination = Path(destination)
    linked = destination.is_symlink() and (destination.is_dir() or not destination.exists())
    return Path(os.path.realpath(destination)) if linked else destination


def scratch_folders(destination: str | os.PathLike, follow_link: bool = True) -> list[Path]:
    """The `.NAME-partial-*` folders `locked_scratch` made beside `destination` (a killed run leaves its own): the
    exact names `tempfile.mkdtemp` makes (8 of `[a-z0-9_]`), so `.out-partial-v2-partial-*`, the scratch folder of
    `out-partial-v2`, is not taken for one of `out`'s. No link: the sweep never follows one out of the folder.
    Beside a link's target (`real_destination`), or with `follow_link` False beside `destination` itself."""
    destination = real_destination(destination) if follow_link else Path(destination)
    shape = re.compile(rf"\.{re.escape(destination.name)}-partial-[a-z0-9_]{{8}}")
    if not destination.parent.is_dir():
        return []
    return sorted(entry for entry in destination.parent.iterdir()
                  if shape.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink())
