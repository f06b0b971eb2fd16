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


def test_a_new_output_where_folders_cannot_be_renamed_is_moved_in_file_by_file(tmp_path, monkeypatch):
    """An object-store mount that renames files but no folder (gcsfuse: ENOSYS): a new `export --output` or `stage`
    destination was the scratch folder renamed in whole, and ended on `OSError: [Errno 38] Function not
    implemented` (an existing one already went file by file)."""
    import errno
    import os

    from hfspeech.export import export_torchscript

    model = save_random_baseline(tmp_path / "model", "cnn", ["a", "b"], 0.5, n_mels=16, conv_channels=[4, 8])
    expected = sorted(p.name for p in export_torchscript(model, tmp_path / "plain").parent.iterdir())
    real_replace = os.replace

    def no_folder_renames(source, target, *args, **kwargs):
        if os.path.isdir(source) and not os.path.islink(source):
            raise OSError(errno.ENOSYS, "Function not implemented", str(source), None, str(target))
        return real_replace(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", no_folder_renames)
    monkeypatch.setattr(os, "rename", no_folder_renames)
    written = export_torchscript(model, tmp_path / "fuse" / "ts")
    assert sorted(p.name for p in written.parent.iterdir()) == expected
    assert sorted(p.name for p in (tmp_path / "fuse").iterdir()) == ["ts"]  # no scratch left


def test_demo_datas_keywords_are_not_hidden_as_a_secret_but_an_api_key_still_is():
    """`--keywords` holds `key`: `demo-data d --keywords "yes " go` said `keyword '<hidden>' must be a word`."""
    from hfspeech.errors import hide_secrets

    said = "keyword 'yes ' must be a word; key sk-12345678"
    assert hide_secrets(said, ["demo-data", "d", "--keywords", "yes ", "go"]) == said
    assert hide_secrets(said, ["serve", "m", "--api_key", "sk-12345678"]) == "keyword 'yes ' must be a word; key <hidden>"
    assert hide_secrets("tok abcdefgh", ["--hub-token=abcdefgh"]) == "tok <hidden>"
