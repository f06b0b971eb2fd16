"""The one rule for where a command may write: a folder that is new, empty, or holds an earlier output of
the same command, which writing again replaces.

Training, averaging, staging, exporting, evaluating and `tiny-model` all write fixed names (config.json,
model.safetensors, data_report.json ...) into a folder the user names. Given a folder of the user's (a data
set, notes, another tool's model) they would overwrite its files without a word, or mix theirs in. Each
command passes what marks its own earlier output (`ours`); everything else present is the user's.

Like `hfspeech.errors`, this is the bottom layer: it imports nothing else from hfspeech, and any stage may
import it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterator, Optional

from hfspeech.errors import HfspeechError, UsageError, first_few


def nothing_is_ours(name: str) -> bool:
    """For commands that write only into a new folder (averaging, staging, tiny-model)."""
    return False


def users_files(folder: str | os.PathLike, ours: Callable[[str], bool] = nothing_is_ours) -> Optional[str]:
    """Why writing into `folder` could damage what the user keeps there, or None when it is new, empty, or
    holds something `ours` recognises (a name the command itself writes: an earlier output of it)."""
    path = Path(folder)
    if not path.is_dir():
        return not_a_folder(path)
    names = sorted(entry.name for entry in path.iterdir())
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


def output_folder_problem(folder: str | os.PathLike, ours: Callable[[str], bool] = nothing_is_ours,
                          earlier: str = "", remedy: str = "") -> Optional[str]:
    """What is wrong and what to do, for a one-line error after "FOLDER: ", or None when `folder` may be
    written. `earlier` names what `ours` recognises ("an earlier export"); `remedy` adds a way out
    ("or pass --overwrite_output_dir to write over them")."""
    problem = users_files(folder, ours)
    if problem is None:
        return None
    if not problem.startswith("holds"):
        return f"{problem}; give a new or empty folder"
    not_ours, way_out = (f", not {earlier}" if earlier else ""), (f", {remedy}" if remedy else "")
    return f"{problem}{not_ours}; give a new or empty folder{way_out}"


def check_output_folder(folder: str | os.PathLike, flag: str = "", ours: Callable[[str], bool] = nothing_is_ours,
                        earlier: str = "", remedy: str = "", error: type[HfspeechError] = UsageError) -> None:
    """Raise `error` naming the flag and the folder when `output_folder_problem` finds one."""
    problem = output_folder_problem(folder, ours, earlier, remedy)
    if problem is not None:
        raise error(f"{flag} {folder}: {problem}" if flag else f"{folder}: {problem}")


@contextlib.contextmanager
def held_alone(folder: str | os.PathLike, refusal: str, flag: str = "") -> Iterator[None]:
    """Hold `folder` for this process until the block ends, or raise `UsageError("FLAG FOLDER: REFUSAL")` when
    another process holds it: two `hfspeech train` into one --output_dir both started (or resumed), wrote
    their checkpoints side by side, and one deleted the checkpoint the other was saving as "incomplete".
    An advisory `flock` on the folder itself (no lock file left among the outputs, released when the process
    dies); the folders created for it and still empty at the end are removed. No-op where there is no `fcntl`
    (Windows) or the folder cannot be made or opened (a file in the way: the command's own check says so)."""
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
        if not held_by_this_process(handle):
            created = []  # the other run's: it may have made them a moment ago
            raise UsageError(f"{flag} {folder}: {refusal}" if flag else f"{folder}: {refusal}")
        yield
    finally:
        os.close(handle)
        for path in created:
            with contextlib.suppress(OSError):  # not empty: kept
                path.rmdir()


def held_by_this_process(handle) -> bool:
    """Takes an advisory `flock` on `handle` (a file or descriptor) for this process until it is closed: False
    when another process holds it; True where no lock can be taken (Windows has no `fcntl`; some network file
    systems refuse locks, ENOLCK): unheld, as before locks. The one lock of `held_alone` and predict's --output."""
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


def named_at(error: BaseException, scratch: str | os.PathLike, output_dir: str | os.PathLike) -> BaseException:
    """`error`, its message naming files of `scratch` (a folder written beside its destination, then moved in) by
    the names they have, or would have, in `output_dir`: where the user will look for them."""
    error.args = tuple(arg.replace(str(scratch), str(output_dir)) if isinstance(arg, str) else arg
                       for arg in error.args)
    return error
