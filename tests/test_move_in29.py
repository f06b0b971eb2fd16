"""How `output_staging.written_beside` moves a finished output in where its destination is a link or cannot be
renamed (a mount point), and how the next run sweeps what a killed one left. Each test reproduces a review's
finding on the first version of the mechanism: a linked folder filled file by file, a full disk that deleted the
earlier export, and a sweep that deleted the earlier output's only copy or another destination's scratch folder."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from hfspeech.models.whisper import pretrained
from hfspeech.models.whisper.pretrained import PRETRAINED
from hfspeech.output_folders import remove_leftover_scratch
from hfspeech.output_staging import written_beside
from tests.test_interrupts28 import Interrupted, fake_conversion, random_cnn  # noqa: F401 (fixture)

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::UserWarning",
                                        "ignore::DeprecationWarning")
TINY = PRETRAINED["whisper-tiny.en"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def stop_at_rename(monkeypatch, stop_at: int, into: tuple[Path, ...], after: bool = False,
                   names=("rename", "replace")) -> None:
    """Ctrl-C at the `stop_at`-th rename (`os.rename`, which `shutil.move` calls, or `os.replace`, of those in
    `names`) of a folder of `into`, onto it or into it, before it or (`after`) once it is done."""
    calls = []
    for name in names:
        def renamed(source, target, *args, real=getattr(os, name), **kwargs):
            counted = any(Path(path) in into or Path(path).parent in into for path in (source, target))
            calls.extend([target] if counted else [])
            if counted and len(calls) == stop_at and not after:
                raise Interrupted
            real(source, target, *args, **kwargs)
            if counted and len(calls) == stop_at and after:
                raise Interrupted

        monkeypatch.setattr(os, name, renamed)


def linked_earlier_conversion(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """`tmp_path/tiny`, a link to `tmp_path/target` that holds an earlier conversion (of other wheels); the next
    conversion faked to write config.json and weights `new`."""
    monkeypatch.setenv("HFSPEECH_CACHE", str(tmp_path / "cache"))
    target, link = tmp_path / "target", tmp_path / "tiny"
    target.mkdir()
    (target / pretrained.MARKER).write_text(json.dumps({"sha256": ["an older wheel"]}))
    (target / "model.safetensors").write_bytes(b"old")
    (target / "config.json").write_text("old")
    link.symlink_to(target)
    fake_conversion(monkeypatch, b"new")
    return link, target


@pytest.mark.parametrize("stop_at, after", [(1, False), (1, True), (2, False), (2, True)])
def test_pretrained_into_a_link_stopped_at_a_rename_leaves_one_whole_conversion(tmp_path, monkeypatch, stop_at,
                                                                                after):
    """Through a link, the conversion was moved in file by file in listing order: stopped there, weights and marker
    without config.json were taken for a finished conversion, or the next run refused the folder ("holds other
    files"). Now the link's target is replaced whole, from a scratch folder beside it: the earlier conversion or
    the new one, never a mix; the link stays a link, and the next run converts."""
    link, target = linked_earlier_conversion(tmp_path, monkeypatch)
    earlier = snapshot(target)
    with pytest.MonkeyPatch.context() as patch:
        stop_at_rename(patch, stop_at, (target, link), after)
        with pytest.raises(KeyboardInterrupt):
            pretrained.fetch_pretrained("whisper-tiny.en", link)
    stopped = snapshot(target)
    assert link.is_symlink() and (stopped == earlier or (pretrained.is_converted(link, TINY) and sorted(stopped) == [
        "config.json", pretrained.MARKER, "model.safetensors"] and stopped["model.safetensors"] == b"new"))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["target", "tiny"]
    assert pretrained.fetch_pretrained("whisper-tiny.en", link) == link and pretrained.is_converted(link, TINY)
    assert (target / "model.safetensors").read_bytes() == b"new" and (target / "config.json").read_text() == "{}"


def busy_mount_point(monkeypatch, mount: Path) -> None:
    """`mount` cannot be renamed, as a mount point (EBUSY)."""
    real_replace = os.replace

    def replace(source, target):
        if Path(source) == mount:
            raise OSError(errno.EBUSY, "Device or resource busy", str(source))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("step, stop_at", [("rename", 1), ("rename", 4), ("replace", 1), ("replace", 4)])
def test_an_export_into_a_mount_point_stopped_half_way_is_never_taken_for_an_export(random_cnn, tmp_path,
                                                                                   monkeypatch, step, stop_at):
    """A mount point is moved into entry by entry. The earlier export's files were deleted before the new ones were
    moved in: stopped there, no export at all. Now each new file is copied in under a hidden name first (stopped
    there: the earlier export as it was), then the earlier model goes first and the new model comes in last
    (stopped there: no model, nothing `predict` would run); no hidden copy is left, and exporting again works."""
    from hfspeech.export import export_torchscript

    mount = tmp_path / "mount"
    export_torchscript(random_cnn, mount)
    earlier = snapshot(mount)
    with pytest.MonkeyPatch.context() as patch:
        stop_at_rename(patch, stop_at, (mount,), names=[step])  # shutil.move renames a copy in; os.replace puts it in
        busy_mount_point(patch, mount)  # (outside the count: the refused rename of `mount` is not one)
        with pytest.raises(KeyboardInterrupt):
            export_torchscript(random_cnn, mount)
    stopped = snapshot(mount)
    assert set(stopped) <= set(earlier) and [p.name for p in tmp_path.iterdir()] == ["mount"]
    assert stopped == earlier  # a stop while renaming in puts the earlier entries back
    busy_mount_point(monkeypatch, mount)
    export_torchscript(random_cnn, mount)
    assert set(snapshot(mount)) == set(earlier)


def test_a_full_disk_while_copying_into_a_mount_point_leaves_the_earlier_export_as_it_was(random_cnn, tmp_path,
                                                                                         monkeypatch):
    """Copied across disks into a folder with files of the user's beside the export, the new model did not fit
    (ENOSPC): the earlier export was already deleted, the new config.json in, and the message said "an earlier
    export there is as it was". Now it is, and the error is one line naming the folder."""
    from hfspeech.errors import OutputWriteError
    from hfspeech.export import export_torchscript

    output = tmp_path / "disk"
    export_torchscript(random_cnn, output)
    (output / "notes.txt").write_text("mine")
    earlier = snapshot(output)
    real_rename, real_copyfile = os.rename, shutil.copyfile

    def across_disks(source, target):
        if Path(target).parent == output:
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(source))
        real_rename(source, target)

    def full(source, target, *args, **kwargs):
        if Path(source).name == "model.torchscript.pt" and Path(target).parent == output:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        return real_copyfile(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "rename", across_disks)
    monkeypatch.setattr(shutil, "copyfile", full)
    with pytest.raises(OutputWriteError, match="No space left on device.*as it was"):
        export_torchscript(random_cnn, output)
    assert snapshot(output) == earlier and [p.name for p in tmp_path.iterdir()] == ["disk"]


def test_the_sweep_puts_back_an_earlier_output_set_aside_by_a_killed_run(tmp_path):
    """Killed (SIGKILL) right after the earlier output was set aside in the scratch folder: the next run's sweep
    deleted the scratch folder, and with it the earlier output's only copy. Now it is put back first."""
    scratch = tmp_path / ".model-partial-abcd_123"
    for name in ("earlier", "model"):
        (scratch / name).mkdir(parents=True)
        (scratch / name / "weights").write_text(name)
    remove_leftover_scratch(tmp_path / "model")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert (tmp_path / "model" / "weights").read_text() == "earlier"


def test_the_sweep_removes_only_the_scratch_folders_of_its_own_destination(tmp_path):
    """`.out-partial-v2-partial-*` (a killed run's scratch folder for `out-partial-v2`) began with `.out-partial-`:
    a run into `out` removed it. Only the exact names `tempfile.mkdtemp` makes for `out` are swept now."""
    for name in (".out-partial-v2-partial-abcd1234", ".out-partial-abcd1234", ".out-partial-notes"):
        (tmp_path / name).mkdir()
    remove_leftover_scratch(tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out-partial-notes", ".out-partial-v2-partial-abcd1234"]


def test_pretrained_removes_the_leftovers_of_a_run_killed_before_written_beside(tmp_path, monkeypatch):
    """`NAME.partial` (the conversion being written) and `NAME.replaced` (the earlier one set aside), left by a run
    of the earlier mechanism killed outright, were removed by the next run; since `written_beside`, they stayed
    (75-145 MB each), also once the checkpoint was converted again."""
    monkeypatch.setenv("HFSPEECH_CACHE", str(tmp_path / "cache"))
    output = tmp_path / "tiny"
    output.mkdir()
    (output / pretrained.MARKER).write_text(json.dumps({"sha256": [wheel.sha256 for wheel in TINY.wheels]}))
    (output / "model.safetensors").write_bytes(b"converted")
    for leftover in ("tiny.partial", "tiny.replaced"):
        (tmp_path / leftover).mkdir()
        (tmp_path / leftover / "model.safetensors").write_bytes(b"half")
    assert pretrained.fetch_pretrained("whisper-tiny.en", output) == output
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == ["tiny"]
    assert (output / "model.safetensors").read_bytes() == b"converted"


def test_written_beside_writes_through_a_link_into_a_mount_point_and_in_place_with_no_room_beside(tmp_path,
                                                                                                monkeypatch):
    """OUTPUT a symlink to an empty folder (rmdir: NotADirectoryError after the whole conversion), a mount point
    (rename: EBUSY) or no folder makeable beside it (a parent not writable: `or_in_place`): a traceback; before the
    partial folder, all were written in place. The link's target is written (the link kept), the mount point file
    by file, and the last written in place, no scratch folder made."""
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    (tmp_path / "mount").mkdir()
    real_replace, real_mkdtemp = os.replace, tempfile.mkdtemp

    def busy(source, target):  # a mount point cannot be renamed
        if Path(source).name == "mount":
            raise OSError(errno.EBUSY, "Device or resource busy", str(source))
        real_replace(source, target)

    def not_writable(*args, prefix="", **kwargs):  # root ignores a chmod: the dependency refuses instead
        if prefix.startswith(".blocked-"):
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))
        return real_mkdtemp(*args, prefix=prefix, **kwargs)

    monkeypatch.setattr(os, "replace", busy)
    monkeypatch.setattr(tempfile, "mkdtemp", not_writable)
    for output in ("link", "blocked", "mount"):
        with written_beside(tmp_path / output, or_in_place=True) as folder:
            assert (folder == tmp_path / output) == (output == "blocked")
            folder.mkdir(exist_ok=True)
            (folder / "model.safetensors").write_text(output)
        assert (tmp_path / output / "model.safetensors").read_text() == output
    assert (tmp_path / "link").is_symlink() and (tmp_path / "target" / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked", "link", "mount", "target"]
    with pytest.raises(PermissionError), written_beside(tmp_path / "blocked"):  # without `or_in_place`: refused
        pass


def test_an_export_into_a_link_whose_targets_folder_is_not_writable_goes_in_entry_by_entry(random_cnn, tmp_path,
                                                                                          monkeypatch):
    """A link to a mount point in a folder not the user's (`~/exports -> /mnt/disk`): no scratch folder can be made
    beside the target, so it is made beside the link, and the export goes in entry by entry (the target is on
    another disk: EXDEV), as through a link before; the link's target was otherwise a `cannot write` error."""
    from hfspeech.export import export_torchscript

    (tmp_path / "mnt").mkdir()
    target, link = tmp_path / "mnt" / "disk", tmp_path / "exports"
    export_torchscript(random_cnn, target)
    (target / "model.torchscript.pt").write_bytes(b"an earlier model")
    link.symlink_to(target)
    real_mkdtemp, real_replace = tempfile.mkdtemp, os.replace

    def not_writable(*args, dir=None, **kwargs):
        if Path(dir) == tmp_path / "mnt":
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real_mkdtemp(*args, dir=dir, **kwargs)

    def another_disk(source, target_path):
        if Path(source) == target:
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(source))
        real_replace(source, target_path)

    monkeypatch.setattr(tempfile, "mkdtemp", not_writable)
    monkeypatch.setattr(os, "replace", another_disk)
    export_torchscript(random_cnn, link)
    assert link.is_symlink() and (target / "model.torchscript.pt").read_bytes() != b"an earlier model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exports", "mnt"]
    assert [p.name for p in target.parent.iterdir()] == ["disk"]


def fake_conversion_with_tokenizer(monkeypatch) -> None:
    """As `fake_conversion`, and a tokenizer.json, which sorts after the marker and the weights."""
    def convert(source, output):
        Path(output).mkdir(parents=True)
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            (Path(output) / name).write_text("new")

    fake_conversion(monkeypatch, b"new")
    monkeypatch.setattr(pretrained, "convert_ctranslate2_whisper", convert)


@pytest.mark.parametrize("stop_at", [1, 2, 3, 4])
def test_pretrained_into_a_mount_point_stopped_half_way_is_never_taken_for_a_conversion(tmp_path, monkeypatch,
                                                                                         stop_at):
    """Moved in entry by entry in name order, the marker and the weights came before tokenizer.json: stopped
    there, a checkpoint without its tokenizer was taken for a finished conversion. The marker comes in last."""
    monkeypatch.setenv("HFSPEECH_CACHE", str(tmp_path / "cache"))
    mount = tmp_path / "mount"
    mount.mkdir()
    fake_conversion_with_tokenizer(monkeypatch)
    with pytest.MonkeyPatch.context() as patch:
        stop_at_rename(patch, stop_at, (mount,), names=["replace"])
        busy_mount_point(patch, mount)
        with pytest.raises(KeyboardInterrupt):
            pretrained.fetch_pretrained("whisper-tiny.en", mount)
    assert not pretrained.is_converted(mount, TINY) and not [p for p in mount.iterdir() if p.name.startswith(".")]
