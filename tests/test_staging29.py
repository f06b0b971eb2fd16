"""One mechanism writes an output beside its destination and renames it in (`output_staging.written_beside`): export,
stage, `hfspeech pretrained` and the Whisper converter. Each test fails on the four separate mechanisms it replaced."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hfspeech.models.whisper.pretrained import PRETRAINED, fetch_pretrained, is_converted
from tests.test_interrupts28 import Interrupted, random_cnn, stop_once, tiny_en_ctranslate2  # noqa: F401 (fixtures)

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::UserWarning",
                                        "ignore::DeprecationWarning")


def folder_renames(monkeypatch) -> list[tuple[str, str]]:
    """Every rename of a folder from now on (`os.rename`, which `Path.rename` and `shutil.move` call, and
    `os.replace`), as (source, target)."""
    renames = []
    for name in ("rename", "replace"):
        real = getattr(os, name)

        def spy(source, target, *args, real=real, **kwargs):
            if os.path.isdir(source) and not os.path.islink(source):
                renames.append((str(source), str(target)))
            return real(source, target, *args, **kwargs)

        monkeypatch.setattr(os, name, spy)
    return renames


def test_pretrained_writes_one_scratch_folder_and_renames_it_in_once(tmp_path, monkeypatch):
    """`hfspeech pretrained` converted into NAME.partial, and the converter staged again inside it: it wrote
    NAME.partial.partial, renamed it to NAME.partial, which was then renamed to NAME (two renames of 150 MB)."""
    output = tmp_path / "tiny"
    renames = folder_renames(monkeypatch)
    assert fetch_pretrained("whisper-tiny.en", output) == output
    assert is_converted(output, PRETRAINED["whisper-tiny.en"])
    assert len(renames) == 1 and renames[0][1] == str(output)
    assert ".partial.partial" not in renames[0][0] and [p.name for p in tmp_path.iterdir()] == ["tiny"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_an_export_stopped_as_it_is_moved_in_leaves_the_earlier_export_whole(random_cnn, tmp_path, monkeypatch):
    """The new export's files were moved in one by one after the earlier export's were deleted: Ctrl-C there left a
    folder with the new config.json and no model at all. Now the export folder is renamed in whole."""
    from hfspeech.export import export_torchscript

    output = tmp_path / "torchscript"
    export_torchscript(random_cnn, output)
    earlier = snapshot(output)
    real_replace, stopped = os.replace, []

    def replace(source, target):  # Ctrl-C as the first file or folder is renamed into `output`
        if not stopped and Path(target) in (output, output / Path(source).name):
            stopped.append(source)
            raise Interrupted
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        export_torchscript(random_cnn, output)
    assert snapshot(output) == earlier and [p.name for p in tmp_path.iterdir()] == ["torchscript"]


def test_a_conversion_into_a_link_stopped_half_way_leaves_the_linked_folder_empty(tiny_en_ctranslate2, tmp_path):
    """Where OUTPUT was a link, the converter wrote into it in place: stopped between the weights and the feature
    extractor, the linked folder held a checkpoint without its extractor or tokenizer."""
    import transformers

    from hfspeech.models.whisper.convert_ctranslate2 import convert_ctranslate2_whisper

    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.MonkeyPatch.context() as patch:
        stop_once(patch, transformers.WhisperFeatureExtractor, "save_pretrained")
        with pytest.raises(KeyboardInterrupt):
            convert_ctranslate2_whisper(tiny_en_ctranslate2, tmp_path / "link")
    assert list((tmp_path / "target").iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == [
        "link", "target"]
    convert_ctranslate2_whisper(tiny_en_ctranslate2, tmp_path / "link")
    assert {"model.safetensors", "preprocessor_config.json", "tokenizer.json"} <= {
        p.name for p in (tmp_path / "target").iterdir()}


def held_by_another_process(folder: Path):
    """A second process holding the advisory lock on `folder`, as a live run holds its scratch folder's; it lets
    go when its stdin closes."""
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys; handle = os.open(sys.argv[1], os.O_RDONLY); "
                               "fcntl.flock(handle, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
                               str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_later_export_removes_a_killed_runs_scratch_folder_and_keeps_a_live_ones(random_cnn, tmp_path):
    """A run killed outright (SIGKILL, power loss) cannot remove its `.NAME-partial-*` folder: it stayed beside the
    output for ever. The next run into the same destination removes it, unless a live run holds it."""
    from hfspeech.export import export_torchscript

    killed, live = tmp_path / ".torchscript-partial-killed00", tmp_path / ".torchscript-partial-live0000"
    (killed / "torchscript").mkdir(parents=True)
    (killed / "torchscript" / "model.torchscript.pt").write_bytes(b"half a model")
    live.mkdir()
    holder = held_by_another_process(live)
    try:
        export_torchscript(random_cnn, tmp_path / "torchscript")
    finally:
        holder.stdin.close()
        holder.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".torchscript-partial-live0000", "torchscript"]


def test_a_scratch_folder_being_written_is_kept_by_another_processs_sweep(tmp_path):
    """`written_beside` holds its scratch folder's lock while the block runs: a sweep by another run into the same
    destination (here, another process's `remove_leftover_scratch`) leaves it alone, and the output is moved in."""
    import subprocess
    import sys

    from hfspeech.output_staging import written_beside

    sweep = "import sys; from hfspeech.output_folders import remove_leftover_scratch; remove_leftover_scratch(sys.argv[1])"
    with written_beside(tmp_path / "out") as new:
        new.mkdir()
        (new / "weights").write_text("new")
        subprocess.run([sys.executable, "-c", sweep, str(tmp_path / "out")], check=True)
        assert (new / "weights").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (tmp_path / "out" / "weights").read_text() == "new"
    (tmp_path / ".out-partial-leftover").mkdir()  # and an unheld one is removed
    subprocess.run([sys.executable, "-c", sweep, str(tmp_path / "out")], check=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_conversion_into_a_mount_point_stopped_before_its_last_file_leaves_no_weights(tiny_en_ctranslate2,
                                                                                       tmp_path, monkeypatch):
    """`--from_ctranslate2` into a mount point moved the files in by name, model.safetensors among the first:
    stopped before the tokenizer files, the folder loaded as a checkpoint. The weights come in last."""
    import shutil

    from hfspeech.models.whisper.convert_ctranslate2 import convert_ctranslate2_whisper
    from tests.test_move_in29 import busy_mount_point, stop_at_rename

    mount = tmp_path / "mount"
    mount.mkdir()
    busy_mount_point(monkeypatch, mount)
    convert_ctranslate2_whisper(tiny_en_ctranslate2, mount)
    files = len(list(mount.iterdir()))
    shutil.rmtree(mount)
    mount.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        stop_at_rename(patch, files, (mount,), names=["replace"])
        busy_mount_point(patch, mount)
        with pytest.raises(KeyboardInterrupt):
            convert_ctranslate2_whisper(tiny_en_ctranslate2, mount)
    assert list(mount.iterdir()) == []  # the new files taken out again: the mount point as it was
