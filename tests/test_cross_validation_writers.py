"""In a multi-process cross-validation only the first process writes cross_validation.json, and only the first
process of each machine the fold manifests (session 41: a machine with its own output folder had none): the others
rewrote (truncated) the manifests while processes read them, and wrote a summary without test scores (only the
first process computes them) that was the file whenever it happened to write last."""

from __future__ import annotations

import json

from transformers import TrainingArguments

from hfspeech.training import cross_validation
from tests.test_distill_cv_audit import cross_validate, write_speaker_manifest


def test_a_process_other_than_the_first_reads_the_folds_and_writes_nothing(tmp_path, monkeypatch):
    manifest = write_speaker_manifest(tmp_path / "data")
    root = tmp_path / "cv"
    monkeypatch.setattr(TrainingArguments, "process_index", property(lambda self: 1))
    monkeypatch.setattr(TrainingArguments, "local_process_index", property(lambda self: 1))
    trained = []

    def second_process(model_args, data_args, training_args):  # what run_training returns on a process but the first
        trained.append((data_args.train_file, data_args.test_file))
        return {"num_test_clips": 3, "num_skipped_files": 0}

    monkeypatch.setattr(cross_validation, "run_training", second_process)
    assert cross_validate(manifest, root) == 0
    assert [test.split("/")[-3] for _, test in trained] == ["fold-ann", "fold-bob", "fold-cy"]
    assert not (root / "cross_validation.json").exists()
    assert not list(root.rglob("*.csv"))  # the first process's files, not rewritten here


def test_the_first_process_writes_them(tmp_path):
    manifest = write_speaker_manifest(tmp_path / "data", labels=("yes", "no", "yes"))
    root = tmp_path / "cv"
    assert cross_validate(manifest, root) == 0
    summary = json.loads((root / "cross_validation.json").read_text())
    assert summary["complete"] and "test_accuracy" in summary
    assert len(list(root.rglob("*.csv"))) == 6  # train and test manifests of three folds
