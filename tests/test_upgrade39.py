"""Resuming a run an earlier hfspeech made (before 93d5b3b: its run_inputs.json lists none of its files) once its
data moved: refused, since nothing tells the files are the same, but saying so and how to resume, not as if the run
had other data (the session-39 upgrade audit: a moved FSDD run read "cannot resume, its run had other data")."""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from hfspeech.training.arguments import DataArguments, ModelArguments
from hfspeech.training.checkpoints import CheckpointError
from hfspeech.training.resume_inputs import DATA_RECORD_FILE, check_same_data
from tests.conftest import write_tone_folder


def old_record(data_dir: Path, seed: int = 42) -> dict:
    """run_inputs.json as hfspeech wrote it before 93d5b3b (f2ee83e): no data_listings, trim_top_db, split_method."""
    source = {"data_dir": str(data_dir), "train_file": None, "validation_file": None, "test_file": None,
              "dataset_name": None, "dataset_config_name": None, "audio_column": "audio", "label_column": "label",
              "path_column": "path", "label_depth": None}
    return {"model_name_or_path": None, "data": source, "seed": seed, "validation_split_percentage": 10.0,
            "test_split_percentage": 10.0, "group_column": None, "max_train_samples": None}


def old_run(tmp_path: Path, record: dict) -> Path:
    checkpoint = tmp_path / "run" / "checkpoint-20"
    checkpoint.mkdir(parents=True)
    (tmp_path / "run" / DATA_RECORD_FILE).write_text(json.dumps(record, indent=2))
    return checkpoint


def resume(checkpoint: Path, data_dir: Path, named: bool = False) -> dict:
    return check_same_data(str(checkpoint), ModelArguments(), DataArguments(data_dir=str(data_dir)),
                           SimpleNamespace(seed=42, resume_from_checkpoint=str(checkpoint) if named else None))


def test_an_old_run_whose_data_moved_is_refused_as_unlisted_with_the_link_that_resumes_it(tmp_path, caplog):
    old, moved = tmp_path / "data" / "gone", tmp_path / "data" / "gone_moved"
    write_tone_folder(old, clips_per_class=2, rates=(8000,))
    checkpoint = old_run(tmp_path, old_record(old))
    old.rename(moved)
    with pytest.raises(CheckpointError) as refused:
        resume(checkpoint, moved)
    said = str(refused.value)
    assert said == (f"{checkpoint}: cannot resume, its run was made by an earlier hfspeech, which recorded no listing "
                    f"of its files, so data at another path cannot be checked as the same; link the old path to the "
                    f"new one (`ln -s {moved} {old}`) and pass `--data_dir {old}`, or pass --overwrite_output_dir "
                    f"to start over, or use a new --output_dir")
    link = said.split("(`", 1)[1].split("`)", 1)[0]
    subprocess.run(shlex.split(link), check=True)  # as the line says: then the run resumes, with the old warning
    with caplog.at_level(logging.WARNING, logger="hfspeech.train"):
        record = resume(checkpoint, old)
    assert record["data"]["data_dir"] == str(old) and "its run recorded no trim_top_db" in caplog.text


def test_an_old_run_whose_data_path_is_still_there_is_told_to_name_it_again(tmp_path):
    old, copy = tmp_path / "data", tmp_path / "copy"
    write_tone_folder(old, clips_per_class=2, rates=(8000,))
    shutil.copytree(old, copy)
    checkpoint = old_run(tmp_path, old_record(old))
    with pytest.raises(CheckpointError) as refused:
        resume(checkpoint, copy, named=True)
    assert str(refused.value).endswith(f"cannot be checked as the same; pass `--data_dir {old}`, or drop "
                                       "--resume_from_checkpoint to start over (with --overwrite_output_dir, or a "
                                       "new --output_dir)")


def test_an_old_run_with_another_seed_too_is_still_refused_as_other_data(tmp_path):
    old, moved = tmp_path / "data", tmp_path / "moved"
    write_tone_folder(old, clips_per_class=2, rates=(8000,))
    checkpoint = old_run(tmp_path, old_record(old, seed=7))
    old.rename(moved)
    with pytest.raises(CheckpointError, match=r"its run had other data or start \(data_dir .* -> .*; seed 7 -> 42\)"):
        resume(checkpoint, moved)


@pytest.mark.parametrize("moved_parent", [False, True])
def test_the_link_for_a_manifest_in_a_moved_folder_links_the_folder(tmp_path, moved_parent):
    """`--train_file corpus/train.csv`, then `mv corpus corpus2`: `ln -s corpus2/train.csv corpus/train.csv` failed,
    no such folder (reviewer R4); the folder is linked, `mkdir -p` first where even its parent is gone."""
    corpus = tmp_path / "a" / "corpus" if moved_parent else tmp_path / "corpus"
    write_tone_folder(corpus / "clips", clips_per_class=2, rates=(8000,))
    (corpus / "train.csv").write_text("path,label\n" + "".join(
        f"clips/{clip.parent.name}/{clip.name},{clip.parent.name}\n" for clip in sorted(corpus.glob("clips/*/*.wav"))))
    record = old_record(tmp_path / "unused")
    record["data"].update(data_dir=None, train_file=str(corpus / "train.csv"))
    checkpoint = old_run(tmp_path, record)
    moved = tmp_path / "b" / "corpus2" if moved_parent else tmp_path / "corpus2"
    moved.parent.mkdir(exist_ok=True)
    corpus.rename(moved)
    if moved_parent:
        (tmp_path / "a").rmdir()
    with pytest.raises(CheckpointError) as refused:
        check_same_data(str(checkpoint), ModelArguments(), DataArguments(train_file=str(moved / "train.csv")),
                        SimpleNamespace(seed=42, resume_from_checkpoint=None))
    link = str(refused.value).split("(`", 1)[1].split("`)", 1)[0]
    assert link.endswith(f"ln -s {moved} {corpus}") and link.startswith("mkdir -p") == moved_parent
    subprocess.run(["sh", "-c", link], check=True)
    check_same_data(str(checkpoint), ModelArguments(), DataArguments(train_file=str(corpus / "train.csv")),
                    SimpleNamespace(seed=42, resume_from_checkpoint=None))


def test_an_old_path_left_as_a_broken_link_is_pointed_at_the_new_place(tmp_path):
    """The old path a link whose target moved: "pass --data_dir OLD" (it exists, as a link) then failed to load
    (reviewer R4); the line points the link at the new place."""
    old, target, moved = tmp_path / "data", tmp_path / "store", tmp_path / "store_moved"
    write_tone_folder(target, clips_per_class=2, rates=(8000,))
    old.symlink_to(target)
    checkpoint = old_run(tmp_path, old_record(old))
    target.rename(moved)
    with pytest.raises(CheckpointError) as refused:
        resume(checkpoint, moved)
    link = str(refused.value).split("(`", 1)[1].split("`)", 1)[0]
    assert link == f"ln -sfn {moved} {old}"
    subprocess.run(shlex.split(link), check=True)
    assert resume(checkpoint, old)["data"]["data_dir"] == str(old)
