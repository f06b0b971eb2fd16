"""Warnings that name the clips they are about: a run with no test split scores its validation clips (they were
called "test clips"), `hfspeech evaluate` on a folder without split folders scores the folder's clips (they were
called "train clips", datasets' name for the one split), and cross-validate's validation draws say a warning once,
naming the folds, where each fold's draw logged the same line without naming its fold."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hfspeech.synthetic.signals import synth_tone_clip
from hfspeech.training.cross_validation import fold_rows
from tests.conftest import TINY_CNN, run_cli_output

ONE_CLASS = "every one of the"


def write_indistinguishable_folder(root: Path, seconds: float) -> Path:
    """Two classes, 12:4 clips, all the same tone (a little noise apart): a model can only learn the commoner one,
    so it answers it to every clip."""
    rng = np.random.default_rng(0)
    for label, count in (("common", 12), ("rare", 4)):
        (root / label).mkdir(parents=True)
        for i in range(count):
            sf.write(root / label / f"{label}_{i:02d}.wav", synth_tone_clip(440.0, rng, 16000, seconds, noise=0.001),
                     16000)
    return root


def one_class_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if ONE_CLASS in record.getMessage()]


def train_without_test_split(data: Path, output_dir: Path) -> None:
    from hfspeech.training.run import main

    main(["--data_dir", str(data), "--output_dir", str(output_dir), "--model_type", "cnn",
          "--config_overrides", TINY_CNN, "--num_train_epochs", "2", "--learning_rate", "1e-2",
          "--per_device_train_batch_size", "8", "--max_length_seconds", "0.3", "--seed", "0",
          "--validation_split_percentage", "50", "--test_split_percentage", "0", "--save_total_limit", "1"])


@pytest.fixture(scope="module")
def one_class_run(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """(data folder, model folder, the one-class warnings its run logged): a run with no test split, on clips no
    longer than the crop (the Trainer's pass scores them)."""
    root = tmp_path_factory.mktemp("words")
    data = write_indistinguishable_folder(root / "data", 0.3)
    handler = ListHandler()
    logging.getLogger("hfspeech").addHandler(handler)
    try:
        train_without_test_split(data, root / "run")
    finally:
        logging.getLogger("hfspeech").removeHandler(handler)
    return data, root / "run", [line for line in handler.lines if ONE_CLASS in line]


class ListHandler(logging.Handler):
    """The messages logged while it is attached (a module fixture cannot take pytest's caplog)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_a_run_without_a_test_split_names_its_validation_clips(one_class_run):
    _, run, lines = one_class_run
    said = json.loads((run / "test_classification_report.json").read_text())["one_class_predicted"]
    assert said.startswith("every one of the 8 validation clips was predicted 'common'"), said
    assert lines == [f"warning: {said}"]
    assert json.loads((run / "metrics.json").read_text())["test_split"] == "validation"


def test_a_run_rescoring_long_validation_clips_names_them_too(tmp_path, caplog):
    """Clips longer than the crop: the split is re-scored as `hfspeech evaluate` scores it, its reports written
    by the same code, whose words were evaluate's split ("test", the manifest the re-scoring reads)."""
    data = write_indistinguishable_folder(tmp_path / "data", 0.5)
    with caplog.at_level(logging.WARNING, logger="hfspeech"):
        train_without_test_split(data, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test_scored_as"].startswith("whole clips, windows of")
    assert metrics["test_one_class_predicted"].startswith("every one of the 8 validation clips was predicted")
    assert one_class_lines(caplog) == [f"warning: {metrics['test_one_class_predicted']}"]


def test_evaluate_on_a_folder_without_split_folders_names_the_folder(one_class_run, tmp_path, capsys, caplog):
    data, run, _ = one_class_run
    with caplog.at_level(logging.WARNING, logger="hfspeech"):
        code, _, _ = run_cli_output(["evaluate", "--model", str(run), "--data_dir", str(data),
                                     "--output_dir", str(tmp_path / "ev")], capsys)
    assert code == 0
    said = json.loads((tmp_path / "ev" / "train_metrics.json").read_text())["one_class_predicted"]
    assert said.startswith(f"every one of the 16 clips of {data} was predicted 'common'"), said
    assert one_class_lines(caplog) == [f"warning: {said}"]


def test_evaluate_on_a_split_folder_still_names_the_split(one_class_run, tmp_path, capsys):
    """The guard on the folder's words: a folder with split folders keeps the split's name."""
    data, run, _ = one_class_run
    for split in ("train", "test"):
        for label in ("common", "rare"):
            (tmp_path / "data" / split / label).mkdir(parents=True)
            for clip in sorted((data / label).iterdir())[:2]:
                (tmp_path / "data" / split / label / clip.name).symlink_to(clip)
    code, _, _ = run_cli_output(["evaluate", "--model", str(run), "--data_dir", str(tmp_path / "data"),
                                 "--output_dir", str(tmp_path / "ev")], capsys)
    assert code == 0
    said = json.loads((tmp_path / "ev" / "test_metrics.json").read_text())["one_class_predicted"]
    assert said.startswith("every one of the 4 test clips was predicted 'common'"), said


def test_evaluate_on_a_folder_lacking_a_class_names_the_folder_not_a_train_split(one_class_run, tmp_path, capsys,
                                                                                  caplog):
    """The missing-classes warning of an unsplit folder said "the train split has no clip of 1 of 2 classes"."""
    data, run, _ = one_class_run
    (tmp_path / "data" / "common").mkdir(parents=True)
    for clip in sorted((data / "common").iterdir())[:3]:
        (tmp_path / "data" / "common" / clip.name).symlink_to(clip)
    with caplog.at_level(logging.WARNING, logger="hfspeech"):
        code, _, _ = run_cli_output(["evaluate", "--model", str(run), "--data_dir", str(tmp_path / "data"),
                                     "--output_dir", str(tmp_path / "ev")], capsys)
    assert code == 0
    lines = [record.getMessage() for record in caplog.records if "no clip of 1 of 2 classes" in record.getMessage()]
    assert len(lines) == 1 and f"the clips of {tmp_path / 'data'} hold no clip" in lines[0], lines
    assert "train split" not in lines[0]


def speakers(count: int, labels: str) -> tuple[list[str], list[set]]:
    """`count` speakers, each with one clip of every label in `labels`: the groups and labels of `fold_rows`."""
    return [f"s{i}" for i in range(count) for _ in labels], [{label} for _ in range(count) for label in labels]


def test_cross_validation_says_a_random_validation_draw_once_naming_its_folds(caplog):
    """Ten speakers, three classes, 3% for validation: one clip, too few to stratify three classes, in every fold.
    Each fold's draw logged the same line, 10 of them, naming no fold."""
    groups, labels = speakers(10, "abc")
    with caplog.at_level(logging.WARNING, logger="hfspeech"):
        fold_rows(groups, 0.03, 0, labels=labels)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1, lines
    assert lines[0].startswith("fold-s0, fold-s1, fold-s2 and 7 more (10 of 10 folds): cannot stratify the "
                               "validation split ("), lines
    assert lines[0].endswith("); splitting at random instead")


def test_cross_validation_names_the_folds_whose_validation_draw_pooled_classes(caplog):
    """Class c has a clip in s0 and one in s1: only their folds are left one c clip to draw from, and pool it."""
    groups, labels = speakers(6, "abab")
    groups, labels = groups + ["s0", "s1"], labels + [{"c"}, {"c"}]
    with caplog.at_level(logging.WARNING, logger="hfspeech"):
        fold_rows(groups, 0.2, 0, labels=labels)
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ["fold-s0, fold-s1 (2 of 6 folds): the validation split: the least populated class has only 1 "
                     "clip, so the 2 rarest of 3 classes (or label groups) are stratified as one"]


def test_evaluate_split_on_a_folder_without_split_folders_says_it_is_one_split(one_class_run, tmp_path, capsys):
    """Review R1: `--split test` on such a folder answered only "no such split in the data (splits: ['train'])"."""
    data, run, _ = one_class_run
    code, _, err = run_cli_output(["evaluate", "--model", str(run), "--data_dir", str(data), "--split", "test",
                                   "--output_dir", str(tmp_path / "ev")], capsys)
    assert code == 2 and "the data is one split" in err and "leave --split out" in err, err
