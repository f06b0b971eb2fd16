"""Two gloo processes on CPU (`accelerate launch --multi_gpu --num_processes 2`) beyond plain training: distillation
from a cached teacher, `--group_column` splits, evaluation sets that do not fill the last round of batches, and a
multi-label linear probe whose frozen features and thresholds come from both processes.

Each test trains at learning rate 0, so the model stays its seeded initial one and one process and two must
report exactly the same numbers: a clip that the distributed sampler repeats to fill the last round of batches
counted twice, a validation split that differs between the processes, or teacher logits paired with other clips
on one process would each change them.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import save_random_baseline, write_tone_folder
from test_distributed import free_port

REPO = Path(__file__).resolve().parents[1]
# No BatchNorm (whose running statistics move even at learning rate 0, from each process's own batches) and no
# dropout: the students of one process and of two then stay the same model, with the same training losses.
STEADY_LSTM = json.dumps({"lstm_hidden_size": 8, "num_lstm_layers": 1, "n_mels": 16, "n_mfcc": 13,
                          "classifier_dropout": 0.0})
REPORT_FILES = ("test_confusion_matrix.json", "test_classification_report.json")


def run_cli(tmp_path: Path, name: str, processes: int, args: list[str]) -> tuple[Path, str]:
    """`hfspeech ARGS` in two processes under accelerate launch, with its own datasets cache; or (processes 1, the
    reference numbers, nothing about a process) called in this one, which has torch imported already."""
    out = tmp_path / name
    if processes == 1:
        from hfspeech.cli import main as cli

        assert cli([*args, "--output_dir", str(out)]) == 0
        return out, ""
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", str(free_port()), "-m", "hfspeech.cli"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "",
           "HF_DATASETS_CACHE": str(tmp_path / f"datasets-{name}")}
    result = subprocess.run([*launcher, *args, "--output_dir", str(out)], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result.stderr + result.stdout


def speaker_manifests(root: Path) -> tuple[Path, Path]:
    """48 tone clips by 4 speakers: s0-s2 in train.csv (one whole speaker becomes validation: 24 train, 12
    validation clips), s3 and one of s0's clips in test.csv (13 clips, a leak to warn about)."""
    tones = write_tone_folder(root / "tones", clips_per_class=16, rates=(16000,))
    rows = [(str(path), path.parent.name, f"s{i % 4}") for i, path in enumerate(sorted(tones.rglob("*.wav")))]
    train = [row for row in rows if row[2] != "s3"]
    files = {"train": train, "test": [row for row in rows if row[2] == "s3"] + train[:1]}
    for name, part in files.items():
        with open(root / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([("path", "label", "speaker"), *part])
    return root / "train.csv", root / "test.csv"


def losses(out: Path) -> list[float]:
    state = json.loads((out / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def test_two_processes_distil_from_one_teacher_run_and_score_as_one_process(tmp_path):
    """`hfspeech distill` with a cached teacher and a `--group_column` split: the teacher run by the main process
    alone, each clip taught with its own logits on both processes, the leak warned once, and the validation (12
    clips) and test (13 clips) numbers and report files those of one process."""
    train_csv, test_csv = speaker_manifests(tmp_path)
    teacher = save_random_baseline(tmp_path / "teacher", "cnn", ["high", "low", "noise"], 0.5, conv_channels=[4, 8],
                                   n_mels=16, apply_spec_augment=False)
    args = ["distill", "--teacher", str(teacher), "--student_model_type", "lstm", "--config_overrides", STEADY_LSTM,
            "--train_file", str(train_csv), "--test_file", str(test_csv), "--group_column", "speaker",
            "--distill_weight", "1", "--learning_rate", "0", "--max_length_seconds", "0.5", "--num_train_epochs", "1",
            "--per_device_eval_batch_size", "4", "--seed", "0", "--save_strategy", "no", "--logging_strategy", "steps",
            "--logging_steps", "1", "--disable_tqdm", "False"]
    one, _ = run_cli(tmp_path, "one", 1, [*args, "--per_device_train_batch_size", "8",
                                          "--teacher_cache_dir", str(tmp_path / "cache-one")])
    two, log = run_cli(tmp_path, "two", 2, [*args, "--per_device_train_batch_size", "4",
                                            "--teacher_cache_dir", str(tmp_path / "cache-two")])
    assert log.count("teacher logits:   0%") == 1, log[-3000:]  # rank 0 ran the teacher, rank 1 read its cache
    assert len(os.listdir(tmp_path / "cache-two")) == 1
    assert log.count("groups leak across the validation/test splits") == 1  # warned by the main process only
    metrics = {name: json.loads((out / "metrics.json").read_text()) for name, out in (("one", one), ("two", two))}
    assert (metrics["two"]["num_train_clips"], metrics["two"]["num_validation_clips"],
            metrics["two"]["num_test_clips"]) == (24, 12, 13)  # 12 and 13 clips: the last round of 2 x 4 is padded
    for key in ("eval_loss", "eval_accuracy", "test_accuracy", "test_macro_f1"):
        assert metrics["two"][key] == pytest.approx(metrics["one"][key], rel=1e-5), key
    assert metrics["two"]["data_warnings"] == metrics["one"]["data_warnings"]  # the same group split on each
    for name in REPORT_FILES:  # written once, by the main process, as one process writes them
        assert (two / name).read_text() == (one / name).read_text(), name
    # Each step's 8 clips are one process's batch of 8 or two of 4: the same soft loss only where every clip met
    # its own teacher logits on both processes.
    assert losses(two) == pytest.approx(losses(one), rel=1e-4)
    assert len(losses(one)) == 3


def test_two_processes_probe_a_multi_label_model_as_one_process(tmp_path):
    """A frozen (tiny, random) Whisper: its features encoded once, by the main process; the per-class
    thresholds tuned on the validation predictions of both processes (12 clips: the last round padded), and the
    test report at them (13 clips), as one process tunes and reports them."""
    from hfspeech.cli import main as cli
    from hfspeech.synthetic.events import generate_event_dataset

    events = generate_event_dataset(tmp_path / "events", num_clips=61, seed=0)
    assert cli(["tiny-model", str(tmp_path / "base"), "--model_type", "whisper"]) == 0
    args = ["train", "--model_name_or_path", str(tmp_path / "base"), "--train_file", str(events / "labels.csv"),
            "--problem_type", "multi_label_classification", "--freeze_base_model", "--learning_rate", "0",
            "--head_learning_rate", "0", "--num_train_epochs", "1", "--per_device_eval_batch_size", "4",
            "--validation_split_percentage", "20", "--test_split_percentage", "20", "--max_length_seconds", "1",
            "--seed", "0", "--save_strategy", "no", "--disable_tqdm", "False"]
    one, _ = run_cli(tmp_path, "one", 1, [*args, "--per_device_train_batch_size", "8"])
    two, log = run_cli(tmp_path, "two", 2, [*args, "--per_device_train_batch_size", "4"])
    for split in ("train", "validation", "test"):
        assert log.count(f"encoding {split} once (frozen base):   0%") == 1, log[-3000:]
    metrics = {name: json.loads((out / "metrics.json").read_text()) for name, out in (("one", one), ("two", two))}
    assert (metrics["two"]["num_validation_clips"], metrics["two"]["num_test_clips"]) == (12, 13)
    assert metrics["two"]["label_thresholds"] == metrics["one"]["label_thresholds"]
    for key in ("eval_map_macro", "eval_loss", "test_map_macro", "test_macro_f1"):
        assert metrics["two"][key] == pytest.approx(metrics["one"][key], rel=1e-5), key
    assert (two / "test_multilabel_report.json").read_text() == (one / "test_multilabel_report.json").read_text()
