"""Write an output beside its destination, then rename it in (`written_beside`): the one mechanism of export, stage,
`hfspeech pretrained` and the Whisper converter.

Written in place, a command stopped half-way (an error, Ctrl-C, SIGTERM, a kill) left a folder that looked
finished, or the earlier output's files beside some of the new ones. The scratch folders themselves (made locked,
swept when a killed run left one) are `output_folders`' rule, which `data.whole_folders` shares.

Bottom layer, as `output_folders` and `errors` (the only parts of hfspeech it imports): any stage may import it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import Callable, Iterator, Optional

from hfspeech.errors import OutputWriteError
from hfspeech.output_folders import (SET_ASIDE, FolderNotWritableError, folder_named, locked_scratch, named_at,
                                     not_writable, nothing_is_ours, put_back_set_aside, real_destination,
                                     remove_leftover_scratch, scratch_folders)

# A new entry copied into a destination moved in file by file, before its rename; the token is the run's scratch
# folder's (`.NAME-partial-TOKEN`), so two runs never take each other's copies, and a killed run's are known.
NEW_ENTRY = ".{name}.hfspeech-new-{token}"
OLD_ENTRY = ".{name}.hfspeech-old-{token}"  # an entry of the earlier output, set aside while the new one takes its name
HIDDEN_ENTRY_SHAPE = re.compile(r"\..+\.hfspeech-(?:new|old)-([a-z0-9_]{8})")


def everything(name: str) -> bool:
    """For `written_beside`: every entry of the destination belongs to the earlier output it replaces."""
    return True


_BEING_WRITTEN: set[Path] = set()  # the new outputs `written_beside` is writing now, in this process


@contextlib.contextmanager
def written_beside(destination: str | os.PathLike, earlier: Callable[[str], bool] = everything,
                   last: Optional[Callable[[str], bool]] = None, or_in_place: bool = False) -> Iterator[Path]:
    """The folder to write a new output into, in a hidden locked `.NAME-partial-*` beside `destination`, not yet made
    (the block makes it); once the block ends, the new output takes `destination`'s place.

    Renamed in whole where it can be: the earlier output (every entry `earlier(name)` or one the new output has)
    is set aside, the new one renamed in, the earlier deleted after; stopped between the renames, the earlier
    output (or the user's empty folder) is put back, by this run or, after a kill, the next one's sweep. A link to a
    folder is replaced so at its target (`real_destination`; the link kept). Where no folder can be renamed in (a
    mount point: EBUSY; files of the user's kept beside the output) it goes entry by entry (`_moved_in_entry_by_entry`,
    `last(name)` last). Two cases yield `destination` itself, which may exist and hold the earlier output: inside
    another `written_beside` block (its new output, or a folder in it: already written beside), and `or_in_place`
    with no room beside `destination` (a parent not writable), where it is written in place. An error's message
    names the files where the user will look for them (`named_at`)."""
    destination = Path(destination)
    if any(folder == destination or folder in destination.parents for folder in _BEING_WRITTEN):
        yield destination
        return
    target = real_destination(destination)
    try:
        scratch, handle = _scratch_beside(target, destination)
    except OSError:
        if not or_in_place:
            raise
        yield destination
        return
    new = scratch / target.name
    _BEING_WRITTEN.add(new)
    try:
        yield new
        new.mkdir(exist_ok=True)  # nothing written: an empty output
        _move_in(new, target, scratch / SET_ASIDE, earlier, last or nothing_is_ours)
    except Exception as error:
        raise named_at(error, new, destination)
    finally:
        _BEING_WRITTEN.discard(new)
        try:
            _put_back_or_remove(scratch, target)
        finally:
            if handle is not None:
                os.close(handle)


def _scratch_beside(target: Path, destination: Path) -> tuple[Path, Optional[int]]:
    """A locked scratch folder beside `target`, on its disk, once a killed run's are swept; beside the link
    `destination` where none can be made there (a link to a mount point in a folder not the user's, `/mnt/disk`):
    written there, the output then goes in entry by entry (its folder cannot be renamed: EACCES, EXDEV)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        sweep_scratch_folders(destination)  # beside the target, and beside the link (a fallback's, of a killed run)
        return locked_scratch(target)
    except OSError:
        if target == destination:
            raise
    return locked_scratch(destination)  # (the link is there: so is its folder)


def scratch_folders_of(destination: str | os.PathLike) -> list[Path]:
    """The `.NAME-partial-*` scratch folders of `destination` a run may have left: beside its target
    (`output_folders.scratch_folders`, which follows a link) and, for a link, beside the link itself, where
    `_scratch_beside` falls back; a killed run's scratch there was never found, so never swept."""
    beside_link = real_destination(destination) != Path(destination)
    return scratch_folders(destination) + (scratch_folders(destination, follow_link=False) if beside_link else [])


def sweep_scratch_folders(destination: str | os.PathLike) -> None:
    """`output_folders.remove_leftover_scratch` in both places `scratch_folders_of` looks: one no live run holds
    goes, after any earlier output it holds is put back at the target."""
    remove_leftover_scratch(destination)
    if real_destination(destination) != Path(destination):
        remove_leftover_scratch(destination, follow_link=False)


def _put_back_or_remove(scratch: Path, destination: Path) -> None:
    """Stopped between the renames, the earlier output is put back; then `scratch` is removed, the earlier output
    first (once the new one is in), also when the put-back was interrupted, unless it is the earlier output's only
    copy: then it is kept, for the next run's sweep to put back."""
    try:
        put_back_set_aside(scratch, destination)
    finally:
        if not os.path.lexists(scratch / SET_ASIDE) or os.path.lexists(destination):
            shutil.rmtree(scratch / SET_ASIDE, ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)


def _move_in(new: Path, destination: Path, set_aside: Path, earlier: Callable[[str], bool],
             last: Callable[[str], bool]) -> None:
    """Two renames, or entry by entry where `destination` cannot be renamed (see `written_beside`). A link to
    nothing or to a file fails listing it, as a command's own check (`not_a_folder`) says before."""
    if not os.path.lexists(destination):
        if _renamed(new, destination):
            return
        _moved_into_new_folder(new, destination, last)
        return
    whole = all(earlier(entry.name) or os.path.lexists(new / entry.name) for entry in destination.iterdir())
    if whole and _renamed(destination, set_aside):
        os.replace(new, destination)
        return
    _moved_in_entry_by_entry(new, destination, earlier, last)


def _moved_into_new_folder(new: Path, destination: Path, last: Callable[[str], bool]) -> None:
    """`new`'s entries moved into `destination`, made for them, `last` ones last, where a file system renames no
    folder (gcsfuse: ENOSYS): `shutil.move` copies what it cannot rename, a subfolder (stage's `onnx/`) too. There is
    no earlier output to keep: stopped or failed, the folder goes again."""
    destination.mkdir()
    try:
        for name in sorted((entry.name for entry in new.iterdir()), key=lambda name: (last(name), name)):
            shutil.move(str(new / name), str(destination / name))
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise


def _renamed(source: Path, target: Path) -> bool:
    try:
        os.replace(source, target)
    except OSError:  # a mount point (EBUSY), a scratch folder on another disk (EXDEV), no folder renames (ENOSYS)
        return False
    return True


def _moved_in_entry_by_entry(new: Path, destination: Path, earlier: Callable[[str], bool],
                             last: Callable[[str], bool]) -> None:
    """Each new entry is first copied in under a hidden name (`NEW_ENTRY`; a copy across disks into a mount point),
    so a full disk there leaves the earlier output as it was. Then each earlier entry is renamed aside (`OLD_ENTRY`),
    `last` ones first, and the new ones renamed in, `last` ones last: a folder caught half-way lacks its `last`
    entries (a model, a marker), never read as finished. A rename that fails or is stopped (Windows refuses to move a
    file another program holds open, or a folder holding one) puts every earlier entry back and takes the new ones
    out: deleted first, the earlier output was lost, and the new one thrown away at the first refusal. The earlier
    entries are deleted once the new output is in. Whatever way it ends, no hidden entry is left behind (a run
    killed outright leaves its own, which the next move removes: `_remove_dead_runs_copies`). A folder this user
    may not write is named as `not_writable` names it, not by the hidden copy that found it (`stage` into bob's)."""
    names = sorted((entry.name for entry in new.iterdir()), key=lambda name: (last(name), name))
    token = new.parent.name.rsplit("-", 1)[-1]
    copies = {name: destination / NEW_ENTRY.format(name=name, token=token) for name in names}
    _remove_dead_runs_copies(destination, new.parent.parent)
    replaced = sorted((entry.name for entry in destination.iterdir() if not HIDDEN_ENTRY_SHAPE.fullmatch(entry.name)
                       and (earlier(entry.name) or entry.name in copies)), key=lambda name: (not last(name), name))
    aside = {name: destination / OLD_ENTRY.format(name=name, token=token) for name in replaced}
    renaming, moving_in = None, False  # the entry of `destination` a failed rename was to move; past the set-asides
    try:
        for name in names:
            shutil.move(str(new / name), str(copies[name]))
        for renaming in replaced:
            os.replace(destination / renaming, aside[renaming])
        moving_in = True
        for renaming in names:
            os.replace(copies[renaming], destination / renaming)
    except BaseException as error:
        moved_in = [name for name in names if moving_in and not os.path.lexists(copies[name])]
        unchanged = _put_back_entries(destination, moved_in, aside)
        if isinstance(error, OSError) and renaming is not None:
            raise _not_replaced(destination / renaming, error, unchanged) from error
        if isinstance(error, PermissionError) and (problem := not_writable(destination)):  # not a hidden copy's name
            raise FolderNotWritableError(error.errno, folder_named(destination, "", problem), str(destination)) \
                from error
        raise
    finally:
        for copy in copies.values():
            with contextlib.suppress(OSError):  # (the error that stopped it is the one to report)
                _remove(copy)
    _remove_set_aside(destination, aside)


def _put_back_entries(destination: Path, moved_in: list[str], aside: dict[str, Path]) -> bool:
    """The new entries `moved_in` taken out, and the earlier ones set `aside` (those that were) put back, the `last`
    ones last; True when `destination` is as it was."""
    whole = True
    for name in reversed(moved_in):
        try:
            _remove(destination / name)
        except OSError:
            whole = False
    for name, set_aside in reversed(aside.items()):
        try:
            if os.path.lexists(set_aside) and not os.path.lexists(destination / name):
                os.replace(set_aside, destination / name)
        except OSError:
            pass
        whole = whole and not os.path.lexists(set_aside)
    return whole


def _not_replaced(path: Path, error: OSError, unchanged: bool) -> OutputWriteError:
    """The one line for an entry of the earlier output that could not be moved: on Windows, held open."""
    held = "a file in it" if path.is_dir() and not path.is_symlink() else "it"
    state = "is unchanged" if unchanged else "could not all be put back (see its hidden .*.hfspeech-old-* entries)"
    why = (f"another program may hold {held} open (a server, an editor, a file browser: Windows refuses then), or "
           "this user may not move it: close it, or give access, and run again" if isinstance(error, PermissionError)
           else "this file system refused to move it")
    return OutputWriteError(f"{path}: cannot be replaced ({error.strerror or error}); {why}; the earlier output in "
                            f"{path.parent} {state}")


def _remove_set_aside(destination: Path, aside: dict[str, Path]) -> None:
    """Delete the earlier entries set aside, once the new output is in. One that will not go is put back under its
    name where the new output has none (else left hidden, for the next move to remove), and said: the new output is
    in, that file of the earlier one is not gone."""
    failed = None
    for name, set_aside in aside.items():
        try:
            _remove(set_aside)
        except OSError as error:
            left = set_aside
            with contextlib.suppress(OSError):
                if not os.path.lexists(destination / name):
                    os.replace(set_aside, destination / name)
                    left = destination / name
            failed = failed or OutputWriteError(
                f"{left}: cannot be removed ({error.strerror or error}), a file of the earlier output; the new output "
                f"is in {destination}: remove it (another program may hold it open)")
    if failed is not None:
        raise failed


def _remove_dead_runs_copies(destination: Path, scratch_parent: Path) -> None:
    """The hidden entries a run killed while moving in left (its copies, `NEW_ENTRY`, and the earlier entries it set
    aside, `OLD_ENTRY`), removed: its token names a scratch folder that is gone (swept, as a killed run's is, before
    this run made its own); an earlier entry nothing took the place of is put back instead. A live run's keep theirs."""
    scratch_tokens = {folder.name.rsplit("-partial-", 1)[-1] for parent in {scratch_parent, destination.parent}
                      for folder in parent.iterdir() if "-partial-" in folder.name}
    for entry in destination.iterdir():
        found = HIDDEN_ENTRY_SHAPE.fullmatch(entry.name)
        if found and found.group(1) not in scratch_tokens:
            named = destination / entry.name[1:].rsplit(".hfspeech-", 1)[0]
            with contextlib.suppress(OSError):  # an earlier entry a killed run set aside, where none took its name:
                if "-old-" in entry.name and not os.path.lexists(named):  # put back, the earlier output's only copy
                    os.replace(entry, named)
                else:
                    _remove(entry)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
