"""Mends from the review of session 32: moved-data listings that follow linked folders and read the split lists'
bytes, a resumed run's best checkpoint kept through a second resume, the split method recorded and checked on
resume, a cross-validation whose pooled re-scoring fails, and the card's words for Speech Commands' splits."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import TINY_CNN, write_tone_folder
from hfspeech.training.checkpoints import CheckpointError
from hfspeech.training.data_listings import path_listing
from hfspeech.training.resume_inputs import DATA_RECORD_FILE, LISTINGS_KEY, check_same_data, data_record
from tests.test_distill_cv_audit import cross_validate, write_speaker_manifest
from tests.test_speech_commands32 import listed, write_layout, write_list


def linked_label_folders(root: Path, clips: Path) -> Path:
    """A data folder whose label folders are symbolic links to `clips`' (a layout kept on another disk)."""
    root.mkdir(parents=True)
    for label in sorted(path.name for path in clips.iterdir() if path.is_dir()):
        os.symlink(clips / label, root / label)
    return root


def resume_check(run: Path, trained_on: Path, resumed_on: Path, since=None) -> dict:
    """`check_same_data` for a run (its record written as training writes it) trained on `trained_on`, resumed
    with `resumed_on` as --data_dir, after `since()` (what changed in between)."""
    from hfspeech.training.arguments import DataArguments, ModelArguments

    checkpoint = run / "checkpoint-8"
    checkpoint.mkdir(parents=True, exist_ok=True)
    (run / DATA_RECORD_FILE).write_text(json.dumps(data_record(None, DataArguments(data_dir=str(trained_on)), 42)))
    if since is not None:
        since()
    return check_same_data(str(checkpoint), ModelArguments(), DataArguments(data_dir=str(resumed_on)),
                           SimpleNamespace(seed=42, resume_from_checkpoint=str(checkpoint)))


def test_folders_of_linked_label_folders_holding_other_clips_are_not_the_same_data(tmp_path):
    """os.walk did not follow the links: both folders listed as empty, so they were "the same files" and the run
    resumed on other clips."""
    first = linked_label_folders(tmp_path / "a", write_tone_folder(tmp_path / "clips_a", 2, rates=(8000,)))
    other = linked_label_folders(tmp_path / "b", write_tone_folder(tmp_path / "clips_b", 3, rates=(8000,)))
    with pytest.raises(CheckpointError, match="its run had other data"):
        resume_check(tmp_path / "run", first, other)
    copy = linked_label_folders(tmp_path / "c", tmp_path / "clips_a")
    resume_check(tmp_path / "run", first, copy)  # the same clips behind the links: resumes


def test_a_same_size_edit_of_a_split_list_is_other_data(tmp_path):
    """Only names and sizes were listed: swapping two speakers between the lists moved clips across splits."""
    root = write_layout(tmp_path / "sc", noise=False)
    before = path_listing(str(root))
    write_list(root / "testing_list.txt", listed("9f8e7d6d"))  # same length, one character changed per line
    assert path_listing(str(root)) != before


def test_a_folder_with_nothing_to_list_cannot_be_told_the_same(tmp_path):
    (tmp_path / "empty" / ".cache").mkdir(parents=True)
    assert path_listing(str(tmp_path / "empty")) is None


def test_the_check_keeps_the_recorded_listing_of_an_unmoved_path_rather_than_walking_it(tmp_path):
    """The walk (1 s per 105k files) ran on every train start on every process; for the same path the resumed
    run's listing is kept, so a clip added since is not listed by the check."""
    data = write_tone_folder(tmp_path / "data", 2, rates=(8000,))
    saved_listing = path_listing(str(data))
    clip = next(data.rglob("*.wav"))
    record = resume_check(tmp_path / "run", data, data, since=lambda: shutil.copy(clip, clip.parent / "late.wav"))
    assert record[LISTINGS_KEY]["data_dir"] == saved_listing != path_listing(str(data))


def write_state(checkpoint: Path, step: int, best_metric: float) -> None:
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step, "best_metric": best_metric}))


def test_a_run_resumed_from_another_runs_checkpoint_keeps_that_best_when_it_resumes_itself(tmp_path):
    """B resumed from A/checkpoint-2 with A/checkpoint-1 best; B killed and resumed from B/checkpoint-3: "beside"
    is B/checkpoint-1 (absent), and the still-correct A/checkpoint-1 was dropped."""
    from transformers import TrainerState

    from hfspeech.training.resumed_best import repoint_best_checkpoint

    write_state(tmp_path / "A" / "checkpoint-1", 1, 0.9)
    write_state(tmp_path / "B" / "checkpoint-3", 3, 0.9)
    state = TrainerState(best_model_checkpoint=str(tmp_path / "A" / "checkpoint-1"), best_global_step=1,
                         best_metric=0.9)
    repoint_best_checkpoint(state, str(tmp_path / "B" / "checkpoint-3"))
    assert (state.best_model_checkpoint, state.best_global_step) == (str(tmp_path / "A" / "checkpoint-1"), 1)


def test_a_recorded_best_path_now_holding_another_runs_checkpoint_is_dropped(tmp_path, caplog):
    from transformers import TrainerState

    from hfspeech.training.resumed_best import repoint_best_checkpoint

    write_state(tmp_path / "A" / "checkpoint-1", 1, 0.4)  # the folder reused: another run's step 1
    state = TrainerState(best_model_checkpoint=str(tmp_path / "A" / "checkpoint-1"), best_global_step=1,
                         best_metric=0.9)
    with caplog.at_level(logging.WARNING, logger="hfspeech.train"):
        repoint_best_checkpoint(state, str(tmp_path / "B" / "checkpoint-3"))
    assert state.best_model_checkpoint is None and "so it is not used" in caplog.text


def train(data: Path, output_dir: Path, *extra: str) -> dict:
    from hfspeech.training.run import main

    return main(["--data_dir", str(data), "--output_dir", str(output_dir), "--model_type", "cnn", "--config_overrides",
                 TINY_CNN, "--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--max_length_seconds",
                 "0.3", "--seed", "0", "--disable_tqdm", "true", "--report_to", "none",
                 "--validation_split_percentage", "20", "--test_split_percentage", "20", *extra])


def test_a_run_of_an_earlier_version_is_not_resumed_where_speakers_now_carve_its_splits(tmp_path):
    """An older run of `<speaker>_nohash_` files split at random; the same seed now carves by speaker, and the
    resumed run trained on clips its validation and test splits had held."""
    root = write_layout(tmp_path / "sc", lists=False, noise=False)
    train(root, tmp_path / "run")
    record_path = tmp_path / "run" / DATA_RECORD_FILE
    record = json.loads(record_path.read_text())
    assert record["split_method"] == "speaker_groups"
    del record["split_method"]  # as an earlier version wrote it
    record_path.write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="split the data another way .split_method 'random' .not recorded: an "
                                              "earlier version's run. -> 'speaker_groups'"):
        train(root, tmp_path / "run", "--num_train_epochs", "2")


def test_split_methods_read_from_the_data_reports_notes(tmp_path):
    from hfspeech.data.labelled import DataSpec, load_labelled_splits, split_method
    from hfspeech.data.prepare import DataReport

    root = write_layout(tmp_path / "sc", noise=False)
    (root / "testing_list.txt").unlink()
    report = DataReport()
    load_labelled_splits(DataSpec(source={"data_dir": str(root), "cache_dir": str(tmp_path / "cache")}), 0,
                         report=report)
    assert split_method(report.notes) == "lists+speaker_groups"
    assert split_method([], "speaker") == "group_column" and split_method(["anything"]) == "random"


def test_an_older_record_of_a_random_split_still_resumes(tmp_path):
    from hfspeech.training.resume_inputs import check_split_method

    (tmp_path / "run" / "checkpoint-2").mkdir(parents=True)
    (tmp_path / "run" / DATA_RECORD_FILE).write_text(json.dumps({"seed": 42}))
    check_split_method(str(tmp_path / "run" / "checkpoint-2"), "random", None)
    check_split_method(str(tmp_path / "run" / "checkpoint-2"), "group_column", None)
    with pytest.raises(CheckpointError, match=r"'random' \(not recorded: an earlier version's run\) -> 'lists'"):
        check_split_method(str(tmp_path / "run" / "checkpoint-2"), "lists", None)


def test_a_fold_whose_held_out_clips_cannot_be_rescored_keeps_its_scores_and_the_folds_after(tmp_path, monkeypatch,
                                                                                            caplog):
    """The re-scoring ran inside the fold's try: its failure marked a fold that trained fine as failed and
    stopped the cross-validation."""
    import hfspeech.training.cross_validation_pooled as pooled

    def unreadable(*_):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(pooled, "score_split", unreadable)  # the evaluation's scoring, not the code under test
    manifest = write_speaker_manifest(tmp_path / "data", labels=("yes", "no"))
    with caplog.at_level(logging.WARNING, logger="hfspeech.cross_validate"):
        assert cross_validate(manifest, tmp_path / "cv") == 0
    summary = json.loads((tmp_path / "cv" / "cross_validation.json").read_text())
    assert summary["complete"] and sorted(summary["folds"]) == ["ann", "bob", "cy"] and "test_accuracy" in summary
    assert summary["pooled"] is None and "disk gone" in summary["pooled_not_scored"]
    assert "gives no pooled score" in caplog.text


@pytest.mark.parametrize("notes, said", [
    (["validation and test carved by whole speakers (the hash before _nohash_ ...)"], "by whole speakers"),
    (["splits from the Speech Commands lists: validation 6 (validation_list.txt), test 6 (testing_list.txt)"],
     "the data set's own lists"),
    ([], "at random"),
])
def test_the_card_says_how_a_speech_commands_test_split_was_held_out(notes, said):
    from hfspeech.hub.card_training import test_set_note

    found = {"train": 30, "validation": 6, "test": 6} if "lists" in said else {"train": 42}
    assert said in test_set_note({"test_split": "test", "test_accuracy": 0.5}, {"found": found, "notes": notes},
                                 [], None, False)


def test_a_copied_folder_of_linked_label_folders_lists_the_same(tmp_path):
    clips = write_tone_folder(tmp_path / "clips", 2, rates=(8000,))
    linked = linked_label_folders(tmp_path / "linked", clips)
    shutil.copytree(clips, tmp_path / "copy")
    assert path_listing(str(linked)) == path_listing(str(tmp_path / "copy")) is not None


def test_a_run_resumed_twice_ends_with_the_best_checkpoint_of_the_run_it_first_resumed_from(tmp_path):
    """End to end: B resumed from A's last checkpoint, A's first the best; B stopped, then resumed itself. The
    second resume dropped A's checkpoint (not beside B's) and kept B's best instead."""
    from tests.test_moved_runs32 import checkpoints, same_weights
    from tests.test_moved_runs32 import train as train_two_epochs

    tones = write_tone_folder(tmp_path / "tones", clips_per_class=6, rates=(8000,))
    train_two_epochs(tones, tmp_path / "A")
    first, last = checkpoints(tmp_path / "A")
    for name in (first, last):  # A's first evaluation the best, with a score no later one reaches
        path = tmp_path / "A" / name / "trainer_state.json"
        state = json.loads(path.read_text())
        state.update(best_model_checkpoint=str(tmp_path / "A" / first), best_global_step=int(first.split("-")[1]),
                     best_metric=2.0)
        path.write_text(json.dumps(state))
    train_two_epochs(tones, tmp_path / "B", "--resume_from_checkpoint", str(tmp_path / "A" / last),
                     "--num_train_epochs", "3")
    train_two_epochs(tones, tmp_path / "B", "--num_train_epochs", "4")  # resumes B's own last checkpoint
    final = json.loads((tmp_path / "B" / "trainer_state.json").read_text())
    assert final["best_model_checkpoint"] == str(tmp_path / "A" / first)
    assert same_weights(tmp_path / "B", tmp_path / "A" / first)
