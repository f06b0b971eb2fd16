"""Session 30: export and stage read the held-out folder as train does; stage flags trained-on clips and a
failed int8 check; no progress bars in a log; multi-label log lines of bounded length."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from hfspeech.cli import main as cli
from hfspeech.training.multilabel import tune_label_thresholds
from tests.conftest import write_tone_folder

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def _trainer_with_validation(num_labels: int):
    """A trainer whose validation predictions have positives for the first half of the labels only."""
    references = np.zeros((4, num_labels))
    references[:, : num_labels // 2] = 1.0
    prediction = SimpleNamespace(predictions=np.zeros((4, num_labels)), label_ids=references)
    return SimpleNamespace(predict=lambda *args, **kwargs: prediction,
                           model=SimpleNamespace(config=SimpleNamespace(label_thresholds=None)))


def test_threshold_log_lines_stay_short_at_thousands_of_labels(caplog):
    names = [f"label_{i:04d}" for i in range(2000)]
    trainer = _trainer_with_validation(len(names))
    with caplog.at_level(logging.INFO, logger="hfspeech.train"):
        thresholds = tune_label_thresholds(trainer, validation=object(), label_names=names)
    assert len(thresholds) == 2000  # the config keeps every one
    lines = [record.getMessage() for record in caplog.records]
    assert lines and all(len(line) < 1000 for line in lines), [len(line) for line in lines]
    warning = next(line for line in lines if "no positive in validation" in line)
    assert "1000 class" in warning and "label_1000" in warning and "980 more" in warning


# --- export and stage read the held-out folder as train does ------------------------------------------------------


def nested_folder_with_bad_files(root: Path) -> Path:
    """The audit's layout: half of each class's clips in `<label>/session2/`, one corrupt WAV, one 0-byte FLAC."""
    write_tone_folder(root, clips_per_class=2, rates=(16000,), seed=5)
    for label in ("low", "high", "noise"):
        (root / label / "session2").mkdir()
        shutil.move(root / label / f"{label}_001.wav", root / label / "session2" / f"{label}_001.wav")
    (root / "low" / "corrupt.wav").write_bytes(b"RIFF not really a wave file" * 40)
    (root / "high" / "empty.flac").write_bytes(b"")
    return root


def said(capsys, caplog) -> list[str]:
    """The lines a command wrote to stderr and logged (pytest takes the log records the terminal would show)."""
    lines = capsys.readouterr().err.splitlines() + caplog.messages
    caplog.clear()
    return lines


@pytest.fixture(scope="module")
def exported_int8_run(trained_cnn, tmp_path_factory) -> Path:
    """The trained run (without its checkpoints) exported to ONNX with an int8 model: exported once for the module
    (an int8 export is the slow part), copied for each test that may change it."""
    from hfspeech.export import export_onnx

    run = tmp_path_factory.mktemp("held_out30") / "run"
    shutil.copytree(trained_cnn, run, ignore=shutil.ignore_patterns("checkpoint-*"))
    export_onnx(run, quantize="int8")
    return run


@pytest.fixture
def run_with_int8(exported_int8_run, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(exported_int8_run, run)  # copy2: the files' times as the export left them
    return run


def test_stage_reads_a_nested_folder_with_bad_files_as_train_does(run_with_int8, tmp_path, capsys, caplog):
    held_out = nested_folder_with_bad_files(tmp_path / "held_out")
    assert cli(["stage", str(run_with_int8), str(tmp_path / "repo"), "--eval_dir", str(held_out)]) == 2
    err = capsys.readouterr().err
    assert "label 'session2'" not in err and "--label_depth 1" in err  # was: 'session2' is not one of the labels
    assert cli(["stage", str(run_with_int8), str(tmp_path / "repo"), "--eval_dir", str(held_out),
                "--label_depth", "1"]) == 2
    err = capsys.readouterr().err
    assert "2 of its 8 audio files cannot be used" in err and "--skip_bad_files" in err
    assert not (tmp_path / "repo").exists()
    assert cli(["stage", str(run_with_int8), str(tmp_path / "repo"), "--eval_dir", str(held_out),
                "--label_depth", "1", "--skip_bad_files", "--include_onnx"]) == 0
    skipped = [line for line in said(capsys, caplog) if "skipped" in line]
    assert len(skipped) == 1 and skipped[0].startswith("data: --eval_dir: skipped 2 bad file(s)"), skipped
    card = (tmp_path / "repo" / "README.md").read_text()
    rows = [line for line in card.splitlines() if line.startswith(("| PyTorch fp32 |", "| ONNX int8 |"))]
    assert len(rows) == 2 and all(" on 6 clips |" in row for row in rows), rows


def test_export_gates_and_calibrates_on_the_training_folders_layout(trained_cnn, tmp_path, capsys, caplog):
    held_out = nested_folder_with_bad_files(tmp_path / "held_out")
    out = tmp_path / "onnx"
    assert cli(["export", str(trained_cnn), "--quantize", "int8", "--calibration_dir", str(held_out),
                "--output", str(out)]) == 2
    assert "(in --calibration_dir; --skip_bad_files skips such files" in capsys.readouterr().err
    assert not out.exists()
    assert cli(["export", str(trained_cnn), "--quantize", "int8", "--calibration_dir", str(held_out),
                "--eval_dir", str(held_out), "--label_depth", "1", "--skip_bad_files", "--force",
                "--output", str(out)]) == 0
    skipped = [line for line in said(capsys, caplog) if "skipped" in line]  # one line each, not one per graph
    assert len(skipped) == 2 and skipped[0].startswith("data: --eval_dir: skipped 2 bad file(s)"), skipped
    assert skipped[1].startswith("data: --calibration_dir: skipped 2 bad file(s)")
    assert json.loads((out / "int8_check.json").read_text())["num_clips"] == 6


def test_stage_says_trained_on_clips_and_a_kept_failed_int8_check(run_with_int8, tone_folder, tmp_path, capsys,
                                                                  caplog):
    check = {"num_clips": 24, "reference_accuracy": 0.9, "candidate_accuracy": 0.5, "agreement": 0.6,
             "accuracy_drop_points": 40.0, "max_accuracy_drop_points": 1.0, "passed": False, "kept_by_force": True,
             "eval_dir": "held_out", "data_warnings": []}  # what `hfspeech export --eval_dir DIR --force` keeps
    (run_with_int8 / "onnx" / "int8_check.json").write_text(json.dumps(check))
    repo = tmp_path / "repo"  # measured on the run's own training folder
    assert cli(["stage", str(run_with_int8), str(repo), "--include_onnx", "--eval_dir", str(tone_folder)]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "measuring ONNX int8 on --eval_dir: 60/60 clips" in err  # no bar in a log: a line
    warnings = [line for line in caplog.messages if line.startswith("warning: ")]
    assert len(warnings) == 2 and "of 60 clips are clips the model was trained on" in warnings[0]
    assert "int8 model failed its accuracy check" in warnings[1] and "40.00 accuracy points" in warnings[1]
    card = (repo / "README.md").read_text()
    assert "clips the model was trained on" in card and "int8 model failed its accuracy check" in card
    assert json.loads((repo / "onnx" / "int8_check.json").read_text())["passed"] is False


def test_held_out_clips_follow_linked_class_folders_and_split_folders(tmp_path):
    """As training lists a folder: a class folder that is a link is followed, and `test/<label>/` is a split."""
    from hfspeech.inference.agreement import labelled_clips as held_out_clips

    write_tone_folder(tmp_path / "elsewhere", clips_per_class=1, rates=(16000,))
    (tmp_path / "linked").mkdir()
    for label in ("low", "high", "noise"):
        os.symlink(tmp_path / "elsewhere" / label, tmp_path / "linked" / label)
    paths, labels = held_out_clips(tmp_path / "linked", {"low", "high", "noise"})
    assert sorted(labels) == ["high", "low", "noise"] and all(path.endswith(".wav") for path in paths)
    write_tone_folder(tmp_path / "split" / "test", clips_per_class=1, rates=(16000,))
    assert sorted(held_out_clips(tmp_path / "split", {"low", "high", "noise"})[1]) == ["high", "low", "noise"]
