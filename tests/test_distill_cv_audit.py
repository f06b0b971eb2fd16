"""What distillation and cross-validation do with what they are given: the teacher's kind of targets, a frozen
student's cached features, a teacher that heard the student's test clips, a multi-label cross-validation's
summary, and the summary of a cross-validation stopped by a failing fold."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import TINY_CNN, save_random_baseline
from hfspeech.cli import main as cli
from hfspeech.errors import DataError
from hfspeech.training import cross_validation

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

TONE_LABELS = ["high", "low", "noise"]
QUICK = ["--max_steps", "1", "--save_strategy", "no", "--eval_strategy", "no", "--load_best_model_at_end",
         "False", "--disable_tqdm", "True", "--report_to", "none"]


def write_speaker_manifest(folder: Path, speakers=("ann", "bob", "cy"), labels=("yes", "no", "yes;no")) -> str:
    """Each speaker says every label (cells may hold several, ';'-separated) in one short noise clip each."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with open(folder / "all.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "speaker"])
        for speaker in speakers:
            for i, label in enumerate(labels):
                sf.write(folder / f"{speaker}-{i}.wav", (0.1 * rng.standard_normal(1600)).astype(np.float32), 16000)
                writer.writerow([f"{speaker}-{i}.wav", label, speaker])
    return str(folder / "all.csv")


def cross_validate(manifest: str, root: Path, *extra: str) -> int:
    return cli(["cross-validate", "--train_file", manifest, "--group_column", "speaker", "--model_type", "cnn",
                "--config_overrides", TINY_CNN, "--output_dir", str(root), "--validation_split_percentage", "0",
                *QUICK, *extra])


def test_a_multi_label_cross_validation_summarises_its_scores_over_the_folds(tmp_path):
    """Its folds have no test_accuracy: the summary stopped on an empty list (a traceback) after every fold had
    trained, and wrote nothing."""
    manifest = write_speaker_manifest(tmp_path / "data")
    assert cross_validate(manifest, tmp_path / "cv", "--problem_type", "multi_label_classification") == 0
    summary = json.loads((tmp_path / "cv" / "cross_validation.json").read_text())
    assert summary["complete"] and sorted(summary["folds"]) == ["ann", "bob", "cy"]
    scores = [fold["test_map_macro"] for fold in summary["folds"].values()]
    assert summary["test_map_macro"]["folds"] == 3
    assert summary["test_map_macro"]["mean"] == pytest.approx(np.mean(scores))
    assert summary["test_map_macro"]["std"] == pytest.approx(np.std(scores))
    assert all(fold["num_test_clips"] == 3 for fold in summary["folds"].values())  # every clip tested once


def test_a_failing_fold_leaves_the_finished_folds_on_record_and_no_mean(tmp_path, monkeypatch, capsys):
    """A fold that stopped (a bad file, Ctrl-C) left no summary at all, or an earlier run's summary (with
    --overwrite_output_dir) beside this run's folds, its mean over other folds."""
    manifest = write_speaker_manifest(tmp_path / "data")
    root = tmp_path / "cv"
    root.mkdir()
    (root / "cross_validation.json").write_text(json.dumps({"folds": {}, "test_accuracy": {"mean": 0.99}}))
    real_run = cross_validation.run_training

    def second_fold_fails(model_args, data_args, training_args):
        if training_args.output_dir.endswith("fold-bob"):
            raise DataError("bob-1.wav: truncated")
        return real_run(model_args, data_args, training_args)

    monkeypatch.setattr(cross_validation, "run_training", second_fold_fails)
    assert cross_validate(manifest, root, "--overwrite_output_dir", "True") == 2
    assert "bob-1.wav: truncated" in capsys.readouterr().err
    summary = json.loads((root / "cross_validation.json").read_text())
    assert list(summary["folds"]) == ["ann"] and "test_accuracy" in summary["folds"]["ann"]
    assert (summary["complete"], summary["failed"], summary["not_run"]) == (False, "bob", ["bob", "cy"])
    assert "test_accuracy" not in summary  # no mean over the folds that happened to finish


@pytest.mark.parametrize("teacher_kind, student_flags", [
    ("single_label_classification", ["--problem_type", "multi_label_classification"]),
    ("multi_label_classification", [])])
def test_a_teacher_of_the_other_kind_of_targets_is_refused_before_the_data(teacher_kind, student_flags, tone_folder,
                                                                           tmp_path, capsys):
    """A single-label teacher's logits sigmoided (or a multi-label teacher's softmaxed) trained the student on
    meaningless targets without a word."""
    teacher = save_random_baseline(tmp_path / "teacher", "cnn", TONE_LABELS, 0.5, conv_channels=[4], n_mels=16,
                                   problem_type=teacher_kind)
    code = cli(["distill", "--teacher", str(teacher), "--student_model_type", "cnn", "--config_overrides", TINY_CNN,
                "--data_dir", str(tone_folder), "--output_dir", str(tmp_path / "out"),
                "--teacher_cache_dir", str(tmp_path / "cache"), *student_flags, *QUICK])
    error = capsys.readouterr().err
    assert code == 2 and error.startswith(f"error: --teacher {teacher}: a ") and error.count("\n") == 1
    assert "distil from a teacher of the same kind" in error and not (tmp_path / "out").exists()


def tiny_whisper_and_teacher(folder: Path) -> tuple[str, Path]:
    from hfspeech.synthetic.tiny import save_tiny_ssl_model

    student = save_tiny_ssl_model(str(folder / "whisper"), "whisper", labels=TONE_LABELS, init_std=0.5)
    return student, save_random_baseline(folder / "teacher", "cnn", TONE_LABELS, 0.5, conv_channels=[4], n_mels=16)


def test_a_frozen_student_with_cached_features_is_refused_with_the_way_out(tone_folder, tmp_path, capsys):
    """The cached head's training split holds features, not audio: the teacher stopped with a traceback
    (`Columns ['input_values'] not in the dataset`) after every split had been encoded."""
    student, teacher = tiny_whisper_and_teacher(tmp_path)
    assert cli(["distill", "--teacher", str(teacher), "--model_name_or_path", str(student), "--freeze_base_model",
                "True", "--data_dir", str(tone_folder), "--output_dir", str(tmp_path / "out"), *QUICK]) == 2
    error = capsys.readouterr().err
    assert "pass --cache_frozen_features False" in error and error.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("live", [False, True])
def test_a_whisper_student_distils_with_mixup(live, tone_folder, tmp_path):
    """Whisper's batches carry `input_features`, not `input_values`: every distillation into a Whisper student
    (mixup or not, cached or live teacher) stopped on a KeyError at its first step."""
    student, teacher = tiny_whisper_and_teacher(tmp_path)
    assert cli(["distill", "--teacher", str(teacher), "--model_name_or_path", str(student), "--data_dir",
                str(tone_folder), "--output_dir", str(tmp_path / "out"), "--teacher_cache_dir", str(tmp_path / "c"),
                "--mixup_alpha", "0.4", "--teacher_on_augmented", str(live), "--max_length_seconds", "0.5",
                *QUICK]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert np.isfinite(metrics["train_loss"]) and "test_accuracy" in metrics


def test_a_teacher_trained_on_the_students_test_clips_is_warned_about(tone_folder, tmp_path):
    """Distilling one leave-one-speaker-out fold from a teacher trained on every speaker: the teacher's
    knowledge of the held-out clips reached the student's targets and its test score said nothing."""
    from hfspeech.training.distill import parse_distill_args, run_distillation

    paths = sorted(tone_folder.glob("*/*.wav"))
    data = tmp_path / "data"
    data.mkdir()
    for name, rows in (("all", paths), ("train", paths[::2]), ("test", paths[1::2])):
        with open(data / f"{name}.csv", "w", newline="") as f:
            csv.writer(f).writerows([["path", "label"], *[[str(p), p.parent.name] for p in rows]])
    common = ["--config_overrides", TINY_CNN, "--max_length_seconds", "0.5", "--validation_split_percentage", "0",
              *QUICK]
    teacher = tmp_path / "teacher"
    assert cli(["train", "--model_type", "cnn", "--train_file", str(data / "all.csv"), "--output_dir", str(teacher),
                "--test_split_percentage", "0", *common]) == 0
    metrics = run_distillation(*parse_distill_args([
        "--teacher", str(teacher), "--student_model_type", "cnn", "--train_file", str(data / "train.csv"),
        "--test_file", str(data / "test.csv"), "--output_dir", str(tmp_path / "student"),
        "--teacher_cache_dir", str(tmp_path / "cache"), *common]))
    [warning] = metrics["data_warnings"]
    n = len(paths[1::2])
    assert warning.startswith(f"--teacher teacher: trained on {n} of the {n} test clips ({n} in its train split; ")
    assert str(tmp_path) not in warning  # data warnings reach the model card: no full paths
