"""Scores must be for clips the model never trained on: leaks across splits and degenerate splits are warned
about in the log and recorded in data_report.json / metrics.json (`data.split_audit`)."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hfspeech.data.labelled import DataSpec, load_labelled_splits
from hfspeech.data.prepare import DataReport
from hfspeech.errors import DataError


def clips(folder: Path, count: int) -> list[str]:
    """`count` different one-tenth-second clips."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        paths.append(str(folder / f"clip{i}.wav"))
        sf.write(paths[-1], (0.1 * rng.standard_normal(1600)).astype(np.float32), 16000)
    return paths


def manifest(path: Path, rows: list[tuple]) -> str:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "speaker"][:len(rows[0])])
        writer.writerows(rows)
    return str(path)


def load(caplog, validation: float = 0, test: float = 0, **source) -> tuple[DataReport, list[str]]:
    report = DataReport()
    with caplog.at_level(logging.WARNING):
        load_labelled_splits(DataSpec(source=source, validation_percentage=validation, test_percentage=test,
                                      group_column=source.pop("group_column", None)), seed=0, report=report)
    return report, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_training_file_in_the_test_manifest_is_warned_about_and_recorded(tmp_path, caplog):
    paths = clips(tmp_path, 6)
    train = manifest(tmp_path / "train.csv", [(p, "yes" if i % 2 else "no") for i, p in enumerate(paths[:4])])
    test = manifest(tmp_path / "test.csv", [(paths[3], "yes"), (paths[4], "no"), (paths[5], "yes")])
    report, logged = load(caplog, train_file=train, test_file=test)
    assert len(report.warnings) == 1 and "both the train and the test split" in report.warnings[0]
    assert "clip3.wav" in report.warnings[0] and any("both the train" in m for m in logged)
    assert str(tmp_path.parent) not in report.warnings[0]  # the card publishes it: folder/name, not where data lives
    assert report.to_dict()["warnings"] == report.warnings


def test_a_copy_of_a_training_file_under_another_name_is_found_by_its_contents(tmp_path, caplog):
    paths = clips(tmp_path, 5)
    shutil.copy(paths[0], tmp_path / "copy.wav")
    train = manifest(tmp_path / "train.csv", [(p, "yes" if i % 2 else "no") for i, p in enumerate(paths[:4])])
    test = manifest(tmp_path / "test.csv", [("copy.wav", "no"), (paths[4], "yes")])
    report, _ = load(caplog, train_file=train, test_file=test)
    assert len(report.warnings) == 1 and "same contents" in report.warnings[0] and "copy.wav" in report.warnings[0]


def test_a_row_listed_twice_is_reported_before_a_split_puts_it_on_both_sides(tmp_path, caplog):
    paths = clips(tmp_path, 8)
    rows = [(p, "yes" if i % 2 else "no") for i, p in enumerate(paths)]
    report, _ = load(caplog, train_file=manifest(tmp_path / "train.csv", rows + [rows[0]]))
    assert report.warnings == [f"1 file(s) listed more than once in the train split, each listing counted as a "
                               f"clip ({Path(paths[0]).parent.name}/{Path(paths[0]).name})"]


def test_the_same_file_with_two_labels_is_an_error(tmp_path, caplog):
    paths = clips(tmp_path, 4)
    rows = [(p, "yes" if i % 2 else "no") for i, p in enumerate(paths)] + [(paths[0], "yes")]
    with pytest.raises(DataError, match="clip0.wav: listed 2 times in split 'train' with different labels"):
        load(caplog, train_file=manifest(tmp_path / "train.csv", rows))


def test_a_speaker_in_train_and_test_is_recorded_not_only_logged(tmp_path, caplog):
    paths = clips(tmp_path, 6)
    train = manifest(tmp_path / "train.csv", [(p, "yes" if i % 2 else "no", "ann" if i < 2 else "bob")
                                              for i, p in enumerate(paths[:4])])
    test = manifest(tmp_path / "test.csv", [(paths[4], "no", "bob"), (paths[5], "yes", "cy")])
    report, logged = load(caplog, train_file=train, test_file=test, group_column="speaker")
    assert report.warnings == ["groups leak across the train/test splits (1: bob): scores on them are not for "
                               "unseen groups"]
    assert sum("leak" in m for m in logged) == 1


def test_a_speaker_holding_most_clips_stays_in_train_rather_than_becoming_the_test_split(tmp_path, caplog):
    """The first group of the seeded order was always taken: one holding 90% of the clips became the test
    split and left one clip (of one class) to train on."""
    paths = clips(tmp_path, 20)
    rows = [(p, "yes" if i % 2 else "no", "big" if i < 18 else f"s{i}") for i, p in enumerate(paths)]
    all_rows = manifest(tmp_path / "all.csv", rows)
    for seed in range(4):
        splits = load_labelled_splits(DataSpec(source={"train_file": all_rows}, validation_percentage=0,
                                               group_column="speaker"), seed=seed)
        assert set(splits["train"]["group"]) == {"big"} and set(splits["test"]["group"]) == {"s18", "s19"}
    with pytest.raises(DataError, match="only 1 group left \\(big\\).*--validation_split_percentage 0"):
        load_labelled_splits(DataSpec(source={"train_file": all_rows}, group_column="speaker"), seed=0)


def test_a_class_missing_from_the_test_split_is_warned_about(tmp_path, caplog):
    paths = clips(tmp_path, 6)
    train = manifest(tmp_path / "train.csv", [(p, "yes" if i % 2 else "no") for i, p in enumerate(paths[:4])])
    test = manifest(tmp_path / "test.csv", [(paths[4], "yes"), (paths[5], "yes")])
    report, _ = load(caplog, train_file=train, test_file=test)
    assert len(report.warnings) == 1 and report.warnings[0].startswith("the test split has no clip of 1 of 2 classes "
                                                                       "(no)")
    assert "always answers the one class left scores accuracy 1.0" in report.warnings[0]


def test_max_train_samples_that_drops_a_class_is_warned_about(tmp_path, caplog):
    paths = clips(tmp_path, 12)
    train = manifest(tmp_path / "train.csv", [(p, "no" if i == 0 else "yes") for i, p in enumerate(paths)])
    report = DataReport()
    with caplog.at_level(logging.WARNING):
        load_labelled_splits(DataSpec(source={"train_file": train}, validation_percentage=0, test_percentage=0,
                                      max_train_samples=1), seed=1, report=report)
    assert report.limited == {"train": 11}
    assert report.warnings == ["the train split has no clip of 1 of 2 classes (no): the model never sees them"]


def test_a_leak_reaches_metrics_json_and_data_report_json(tmp_path):
    from conftest import TINY_CNN
    from hfspeech.cli import main as cli

    paths = clips(tmp_path, 6)
    train = manifest(tmp_path / "train.csv", [(p, "yes" if i % 2 else "no") for i, p in enumerate(paths[:4])])
    test = manifest(tmp_path / "test.csv", [(paths[3], "yes"), (paths[4], "no"), (paths[5], "yes")])
    out = tmp_path / "run"
    assert cli(["train", "--train_file", train, "--test_file", test, "--model_type", "cnn", "--config_overrides",
                TINY_CNN, "--output_dir", str(out), "--max_steps", "1", "--validation_split_percentage", "0",
                "--disable_tqdm", "True"]) == 0
    metrics, report = json.loads((out / "metrics.json").read_text()), json.loads((out / "data_report.json").read_text())
    assert metrics["data_warnings"] == report["warnings"] and "both the train and the test" in report["warnings"][0]


def test_the_model_card_carries_the_split_warnings():
    from hfspeech.hub.card import _data_section

    section = _data_section(None, {"train": 4, "test": 3}, 0, ["1 file(s) are in both the train and the test split"])
    assert "**Warning:** 1 file(s) are in both the train and the test split." in section
