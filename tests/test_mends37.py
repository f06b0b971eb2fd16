"""Session 37's small mends: each test failed before its mend."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import save_random_baseline
from tests.test_permissions36 import as_another_user, hfspeech_code


def test_an_unreadable_config_is_named_plainly_not_as_a_raw_errno_line(tmp_path):
    """predict's user-error wrapper turned a PermissionError into `error: [Errno 13] Permission denied:
    'mdl/config.json'`; main's access refusal names the file and the way out, as for every other command."""
    save_random_baseline(tmp_path / "mdl", "cnn", ["a", "b"], 0.02)
    sf.write(tmp_path / "a.wav", np.zeros(8000, dtype="float32"), 16000)
    (tmp_path / "mdl" / "config.json").chmod(0)
    try:
        done = as_another_user(hfspeech_code("predict", "mdl", "a.wav"), cwd=tmp_path)
    finally:
        (tmp_path / "mdl" / "config.json").chmod(0o644)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: mdl/config.json: Permission denied; give this user access to it (and to the folders above it), "
        "or use another path")


def test_an_int8_check_that_cannot_measure_keeps_no_unmeasured_int8_file(tmp_path):
    """Only the gate's own refusal deleted the int8 file: a check that stopped on anything else (a held-out clip
    it could not decode) let `model_quantized.onnx` be moved in beside the export, never measured."""
    from hfspeech.export import export_onnx

    model = save_random_baseline(tmp_path / "model", "cnn", ["a", "b"], 0.5, n_mels=16, conv_channels=[4, 8])

    def cannot_measure(int8_file):
        raise ValueError("held/x.wav: not an audio file")

    with pytest.raises(ValueError, match="held/x.wav"):
        export_onnx(model, tmp_path / "onnx", quantize="int8", check_int8=cannot_measure)
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == [
        "config.json", "model.onnx", "preprocessor_config.json", "traced_from.json"]


def test_a_demo_data_folders_description_files_are_not_warned_about(tmp_path, caplog):
    """`demo-data` writes README.md and dataset_info.json beside its clips: every run on its folder warned "ignored
    2 file(s) that are not audio", and its summary said so too. They are still listed in data_report.json; a stray
    file is still warned about."""
    import logging

    from hfspeech.data.prepare import DataReport

    described = [{"path": "d/README.md", "reason": "dataset description"},
                 {"path": "d/dataset_info.json", "reason": "dataset description"}]
    stray = [{"path": "d/yes/notes.txt", "reason": "not an audio file (by its extension)"}]
    report = DataReport()
    with caplog.at_level(logging.WARNING, logger="hfspeech.data"):
        report.add_listing({"train": 4}, described, [])
    assert not caplog.records and "ignored" not in report.summary()
    assert report.to_dict()["num_ignored"] == 2
    report.add_listing({}, stray, [])
    assert "ignored 1 file(s)" in caplog.text and "notes.txt" in caplog.text
    assert "ignored 1 non-audio or hidden file(s)" in report.summary()


def test_a_killed_runs_set_aside_earlier_entry_is_put_back_not_deleted(tmp_path):
    """A run killed outright after setting an earlier entry aside (`.NAME.hfspeech-old-TOKEN`) and before its own
    took the name left the earlier output's only copy hidden; the next move deleted it. Now it is put back where
    nothing took its name, and removed where something did; a killed run's new copies are removed."""
    from hfspeech.output_staging import _remove_dead_runs_copies

    mount = tmp_path / "mount"
    mount.mkdir()
    (mount / ".model.onnx.hfspeech-old-deadrun0").write_bytes(b"earlier model")
    (mount / ".config.json.hfspeech-old-deadrun0").write_text("earlier config")
    (mount / "config.json").write_text("the killed run's config, moved in")
    (mount / ".traced_from.json.hfspeech-new-deadrun0").write_text("a copy never moved in")
    _remove_dead_runs_copies(mount, tmp_path)
    assert sorted(p.name for p in mount.iterdir()) == ["config.json", "model.onnx"]
    assert (mount / "model.onnx").read_bytes() == b"earlier model"
    assert (mount / "config.json").read_text() == "the killed run's config, moved in"


@pytest.mark.parametrize("group", ["a:b", "what?", "y ", "x."])
def test_a_group_windows_cannot_name_a_fold_folder_after_is_refused_before_anything_is_written(group):
    """cross-validate's leave-one-group-out folders are `fold-<group>`: `a:b` failed with a traceback on Windows
    half-way through the folds, and `x.` became `x`'s folder there, one fold's run replacing the other's."""
    from hfspeech.errors import DataError
    from hfspeech.training.fold_manifests import check_fold_folder_names

    check_fold_folder_names("m.csv", "speaker", ["ann", "bob", "x"])
    with pytest.raises(DataError, match=r"m\.csv: row 3: speaker .* cannot name a fold folder .*--num_folds K"):
        check_fold_folder_names("m.csv", "speaker", ["ann", "bob", group])


def no_folder_renames(monkeypatch) -> None:
    """As an object-store mount (gcsfuse) renames: files, but no folder (ENOSYS)."""
    import errno
    import os

    real_replace = os.replace

    def renamed(source, target, *args, **kwargs):
        if os.path.isdir(source) and not os.path.islink(source):
            raise OSError(errno.ENOSYS, "Function not implemented", str(source), None, str(target))
        return real_replace(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", renamed)
    monkeypatch.setattr(os, "rename", renamed)


def test_a_new_output_where_folders_cannot_be_renamed_is_moved_in_file_by_file(tmp_path, monkeypatch):
    """An object-store mount that renames files but no folder (gcsfuse: ENOSYS): a new `export --output` or `stage`
    destination was the scratch folder renamed in whole, and ended on `OSError: [Errno 38] Function not
    implemented` (an existing one already went file by file)."""
    from hfspeech.export import export_torchscript

    model = save_random_baseline(tmp_path / "model", "cnn", ["a", "b"], 0.5, n_mels=16, conv_channels=[4, 8])
    expected = sorted(p.name for p in export_torchscript(model, tmp_path / "plain").parent.iterdir())
    no_folder_renames(monkeypatch)
    written = export_torchscript(model, tmp_path / "fuse" / "ts")
    assert sorted(p.name for p in written.parent.iterdir()) == expected
    assert sorted(p.name for p in (tmp_path / "fuse").iterdir()) == ["ts"]  # no scratch left


def test_demo_datas_keywords_are_not_hidden_as_a_secret_but_an_api_key_still_is():
    """`--keywords` holds `key`: `demo-data d --keywords "yes " go` said `keyword '<hidden>' must be a word`."""
    from hfspeech.hidden_words import hide_secrets

    said = "keyword 'yes ' must be a word; key sk-12345678"
    assert hide_secrets(said, ["demo-data", "d", "--keywords", "yes ", "go"]) == said
    assert hide_secrets(said, ["serve", "m", "--api_key", "sk-12345678"]) == "keyword 'yes ' must be a word; key <hidden>"
    assert hide_secrets("tok abcdefgh", ["--hub-token=abcdefgh"]) == "tok <hidden>"


def test_a_fold_split_cached_by_itself_decodes_a_replaced_clip_again(tmp_path, monkeypatch):
    """cross-validate's folds are rows of one table named by their rows; a split too small to be decoded as that
    table (`--max_train_samples 1`) is cached under a fingerprint made from the name, which held no file stats: a
    clip re-recorded under its name kept its old audio (reviewer R1)."""
    import datasets

    from hfspeech.data.columns import column_values
    from hfspeech.data.labelled import DataSpec, load_labelled_splits
    from hfspeech.data.prepare import prepare_dataset
    from hfspeech.training.cross_validation import drawn_folds
    from tests.test_folds37 import write_manifest

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    manifest = write_manifest(tmp_path / "data", ["ann", "bob", "cy"], per_speaker=8)
    folds, _ = drawn_folds(manifest, "speaker", str(tmp_path / "cv"), 0.25, 0, label_column="label")
    source = {f"{name}_file": path for name, path in folds["ann"].items()}

    def train_lengths() -> list[int]:
        spec = DataSpec(source=source, group_column="speaker", parts_of_one_table=True, max_train_samples=1,
                        max_eval_samples=1)
        prepared, _ = prepare_dataset(load_labelled_splits(spec, seed=0), 16000)
        return [len(clip) for clip in column_values(prepared["train"], "input_values")]

    before = train_lengths()
    for clip in (tmp_path / "data").glob("*.wav"):  # every clip re-recorded, twice as long
        sf.write(clip, np.full(2 * before[0], 0.1, np.float32), 16000)
    assert train_lengths() == [2 * before[0]]


def test_a_new_output_with_a_subfolder_where_folders_cannot_be_renamed_is_copied_in(tmp_path, monkeypatch):
    """The ENOSYS fallback renamed each copied entry in, and a subfolder (stage's `onnx/`) met ENOSYS again: the
    error said another program might hold it open, with no earlier output at all (reviewer R1)."""
    from hfspeech.output_staging import written_beside

    no_folder_renames(monkeypatch)
    with written_beside(tmp_path / "staged", earlier=lambda name: name != "README.md", last="README.md".__eq__) as new:
        (new / "onnx").mkdir(parents=True)
        (new / "onnx" / "model.onnx").write_text("m")
        (new / "README.md").write_text("card")
    got = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert got == ["staged", "staged/README.md", "staged/onnx", "staged/onnx/model.onnx"]


def test_a_broken_link_named_as_a_text_file_is_ignored_not_taken_for_a_class_folder(tmp_path):
    """Any broken link not named as audio stopped the listing as a class folder whose clips were missing (reviewer
    R1); one named as another file is ignored, as that file would be; one without an extension still stops it."""
    import os

    from hfspeech.data.folders import FolderLayoutError, list_audio_folder

    for label in ("a", "b"):
        (tmp_path / "data" / label).mkdir(parents=True)
        sf.write(tmp_path / "data" / label / "x.wav", np.zeros(800, np.float32), 8000)
    os.symlink("/nonexistent/notes.txt", tmp_path / "data" / "a" / "notes.txt")
    listing = list_audio_folder(tmp_path / "data")
    assert any(entry["path"].endswith("notes.txt") for entry in listing.ignored)
    os.symlink("/nonexistent/c", tmp_path / "data" / "c")
    with pytest.raises(FolderLayoutError, match="if it was a class folder"):
        list_audio_folder(tmp_path / "data")


def test_training_without_workers_needs_no_shared_memory(monkeypatch):
    """The epoch was put in shared memory for DataLoader workers in every run: a full or read-only /dev/shm (a
    sandbox, Docker's 64 MB filled) stopped `train --dataloader_num_workers 0` on `RuntimeError: unable to allocate
    shared memory(shm)` (audit LM)."""
    import torch

    from hfspeech.data.transforms import TrainTransform

    def no_room(tensor):
        raise RuntimeError("unable to allocate shared memory(shm) for file </torch_1_2>: No space left on device (28)")

    monkeypatch.setattr(torch.Tensor, "share_memory_", no_room)
    transform = TrainTransform(max_samples=4, seed=0)
    transform.set_epoch(2)
    assert transform.epoch == 2


def test_workers_without_room_in_shared_memory_are_warned_of_before_training(tmp_path, caplog):
    """With less room in /dev/shm than the batches DataLoader workers keep in flight (Docker's 64 MB, 10-s clips,
    batch 32, 2 workers), torch's workers failed and the run hung without a word (audit LM)."""
    import logging
    from types import SimpleNamespace

    from hfspeech.training.shared_memory import warn_if_shared_memory_short

    free = __import__("shutil").disk_usage(tmp_path).free
    args = SimpleNamespace(dataloader_num_workers=2, dataloader_prefetch_factor=None, per_device_train_batch_size=32)
    with caplog.at_level(logging.WARNING, logger="hfspeech.training"):
        warn_if_shared_memory_short(args, max_samples=free // 32, folder=str(tmp_path))  # 4 batches of free each
        assert "--dataloader_num_workers" in caplog.text and "4 batches of 32 clips" in caplog.text
        caplog.clear()
        warn_if_shared_memory_short(args, max_samples=16000, folder=str(tmp_path))
        warn_if_shared_memory_short(SimpleNamespace(**{**vars(args), "dataloader_num_workers": 0}),
                                    max_samples=free, folder=str(tmp_path))
    assert not caplog.records
