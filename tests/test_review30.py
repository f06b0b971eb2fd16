"""A review of session 30's manifest path rule: one base folder for train, cross-validate and predict (a
manifest in a linked folder read the same files under different names), one row count ("row 1" is the first
data row everywhere), a manifest with one deleted file refused whole as "written from the current folder" when a
copy of the data was the current folder, and a missing `MODEL.ONNX` called a model folder."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hfspeech.data.loading import load_audio_dataset
from hfspeech.data.manifests import manifest_files
from hfspeech.errors import DataError
from tests.conftest import synth_clip


def write_clip(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, synth_clip("low", np.random.default_rng(0), 16000, 0.3), 16000, format="WAV")
    return path


def write_manifest(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("path,label,speaker\n" + "".join(f"{p},{label},{s}\n" for p, label, s in rows), encoding="utf-8")
    return path


def trained_paths(manifest: Path) -> list[str]:
    return [audio["path"] for audio in load_audio_dataset(train_file=str(manifest))["train"]["audio"]]


def test_train_cross_validate_and_predict_name_a_linked_folders_files_alike(tmp_path):
    """Train and cross-validate resolved the manifest's path (the real folder), predict kept the link: the same
    clips under two names, so that what predict scored was not matched with what a run trained on."""
    from hfspeech.training.cross_validation import write_fold_manifests

    for name in ("a", "b", "c", "d"):
        write_clip(tmp_path / "real" / "clips" / f"{name}.wav")
    write_manifest(tmp_path / "real" / "all.csv", [(f"clips/{n}.wav", "low", s) for n, s in zip("abcd", "xxyy")])
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    manifest = tmp_path / "link" / "all.csv"
    predicted = [os.path.abspath(file) for file in manifest_files(str(manifest))]
    assert predicted == [str(tmp_path / "link" / "clips" / f"{n}.wav") for n in "abcd"]
    assert trained_paths(manifest) == predicted
    folds = write_fold_manifests(str(manifest), "speaker", str(tmp_path / "cv"), 0.0, seed=0)
    with open(folds["x"]["train"], encoding="utf-8") as f:
        assert [row["path"] for row in csv.DictReader(f)] == predicted[2:]
    linked = tmp_path / "lists" / "all.csv"  # a link to the manifest: its target's folder, for all three
    linked.parent.mkdir()
    linked.symlink_to(tmp_path / "real" / "all.csv")
    assert trained_paths(linked) == [os.path.abspath(file) for file in manifest_files(str(linked))]


def test_an_empty_path_cell_is_the_same_row_for_train_and_predict(tmp_path):
    """Train said "row 2" for the first data row (counting the header), predict "row 1"."""
    manifest = write_manifest(tmp_path / "test.csv", [("", "low", "x"), ("a.wav", "low", "x")])
    with pytest.raises(DataError, match=r"row 1 has an empty 'path' cell"):
        load_audio_dataset(train_file=str(manifest))
    with pytest.raises(DataError, match=r"row 1 has no 'path'"):
        manifest_files(str(manifest))


def test_one_deleted_file_with_a_copy_as_the_current_folder_is_that_file_missing(tmp_path, monkeypatch):
    """Predict named the one missing file and scored the rest; the rule refusing manifests written from the
    current folder refused the whole manifest instead, saying its paths were written wrong."""
    for folder in ("data", "copy"):
        for name in ("a", "b"):
            write_clip(tmp_path / folder / f"{name}.wav")
    write_manifest(tmp_path / "data" / "test.csv", [("a.wav", "low", "x"), ("b.wav", "low", "x")])
    (tmp_path / "data" / "a.wav").unlink()
    monkeypatch.chdir(tmp_path / "copy")
    files = manifest_files("../data/test.csv")
    assert [os.path.lexists(file) for file in files] == [False, True]
    with pytest.raises(DataError) as refused:
        load_audio_dataset(train_file="../data/test.csv")
    assert f"1 audio file(s) listed in the manifest do not exist: {tmp_path / 'data' / 'a.wav'}" in str(refused.value)


def test_a_missing_upper_case_export_file_is_called_an_export_file(tmp_path):
    from hfspeech.models.folder_checks import check_model_folder
    from hfspeech.models.loading import NotAModelError

    for name in ("MODEL.ONNX", "model.PT"):
        with pytest.raises(NotAModelError, match="exported model file not found"):
            check_model_folder(str(tmp_path / name))
