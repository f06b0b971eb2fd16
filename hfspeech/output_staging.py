"""Write an output beside its destination, then rename it in (`written_beside`): the one mechanism of export, stage,
`hfspeech pretrained` and the Whisper converter.

Written in place, a command stopped half-way (an error, Ctrl-C, SIGTERM, a kill) left a folder that looked
finished, or the earlier output's files beside some of the new ones. The scratch folders themselves (made locked,
swept when a killed run left one) are `output_folders`' rule, which `data.whole_folders` shares.

Bottom layer, as `output_folders` (the only part of hfspeech it imports): any stage may import it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator, Optional

from hfspeech.output_folders import (SET_ASIDE, locked_scratch, named_at, nothing_is_ours, put_back_set_aside,
                                     real_destination, remove_leftover_scratch)

NEW_ENTRY = ".{}.hfspeech-new"  # a new entry copied into a destination moved into file by file, before its rename


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
        remove_leftover_scratch(target)
        return locked_scratch(target)
    except OSError:
        if target == destination:
            raise
    return locked_scratch(destination)  # (the link is there: so is its folder)


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
        os.replace(new, destination)
        return
    whole = all(earlier(entry.name) or os.path.lexists(new / entry.name) for entry in destination.iterdir())
    if whole and _renamed(destination, set_aside):
        os.replace(new, destination)
        return
    _moved_in_entry_by_entry(new, destination, earlier, last)


def _renamed(source: Path, target: Path) -> bool:
    try:
        os.replace(source, target)
    except OSError:  # a mount point (EBUSY), a scratch folder on another disk (EXDEV)
        return False
    return True


def _moved_in_entry_by_entry(new: Path, destination: Path, earlier: Callable[[str], bool],
                             last: Callable[[str], bool]) -> None:
    """Each new entry is first copied in under a hidden name (`NEW_ENTRY`; a copy across disks into a mount point),
    so a full disk there leaves the earlier output as it was: deleted first, a failed copy left new files beside
    none of the earlier ones. Then the earlier entries go, `last` ones first, and the new ones are renamed over,
    `last` ones last: a folder caught half-way lacks its `last` entries (a model, a marker), never read as
    finished. Whatever way it ends, no hidden copy is left behind."""
    names = sorted((entry.name for entry in new.iterdir()), key=lambda name: (last(name), name))
    copies = {name: destination / NEW_ENTRY.format(name) for name in names}
    earlier_entries = [entry for entry in destination.iterdir() if entry not in copies.values() and (
        earlier(entry.name) or (entry.name in copies and not _replaceable(entry, new / entry.name)))]
    try:
        for name in names:
            _remove(copies[name])  # a killed run's
            shutil.move(str(new / name), str(copies[name]))
        for entry in sorted(earlier_entries, key=lambda entry: not last(entry.name)):
            _remove(entry)
        for name in names:
            os.replace(copies[name], destination / name)
    finally:
        for copy in copies.values():
            with contextlib.suppress(OSError):  # (the error that stopped it is the one to report)
                _remove(copy)


def _replaceable(earlier: Path, new: Path) -> bool:
    """Whether `os.replace(new, earlier)` replaces `earlier` in one step: neither is a folder."""
    return not (earlier.is_dir() and not earlier.is_symlink()) and not (new.is_dir() and not new.is_symlink())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
