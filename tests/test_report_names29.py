"""The names of the files an evaluation writes live once, in `evaluation.report`: the writers name their files
from the table, `hfspeech evaluate` recognises an earlier evaluation by it, and `hfspeech stage` carries a run's
test report by it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from hfspeech.cli import main as cli
from hfspeech.errors import UsageError
from hfspeech.evaluation.evaluate_model import _check_output_dir
from hfspeech.evaluation.report import (metrics_file_name, report_file_names, write_evaluation_report,
                                        write_multilabel_report)
from hfspeech.hub.stage import REPORT_FILES
from hfspeech.models.config_json import DATA_REPORT_FILE
from tests.conftest import TONE_CLASSES, save_random_baseline, write_tone_folder

LABELS = ["cat", "dog", "bird"]


def _written(folder) -> set[str]:
    return {path.name for path in folder.iterdir()}


def test_the_report_writers_write_exactly_the_table_names(tmp_path):
    """Both writers for one split together write the table's names, no more and no fewer: a file the table
    lacked would be refused as the user's when evaluating again into the folder, and not staged."""
    write_evaluation_report(str(tmp_path / "single"), [0, 1, 2, 1], [0, 1, 2, 2], LABELS, prefix="dev")
    scores = np.array([[0.9, 0.2, 0.1], [0.1, 0.8, 0.7], [0.3, 0.4, 0.6]])
    write_multilabel_report(str(tmp_path / "multi"), scores, np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1]]), LABELS,
                            thresholds=[0.5, 0.5, 0.5], prefix="dev")
    single, multi = _written(tmp_path / "single"), _written(tmp_path / "multi")
    assert single.isdisjoint(multi)
    assert sorted(single | multi) == sorted(report_file_names("dev"))


def _evaluate(model, data, out) -> int:
    return cli(["evaluate", str(model), "--data_dir", str(data), "--output_dir", str(out)])


def test_every_file_an_evaluation_writes_marks_an_earlier_evaluation(tmp_path):
    """A single-label and a multi-label evaluation into one folder leave every name of the table, and each file
    alone marks the folder as an earlier evaluation: one killed after its first report is evaluated into again
    rather than refused as the user's (a folder of the user's own still is)."""
    data = write_tone_folder(tmp_path / "tones", clips_per_class=1, rates=(8000,))
    labels = list(TONE_CLASSES)
    single = save_random_baseline(tmp_path / "single", "cnn", labels, 0.5, conv_channels=[4, 8], n_mels=16)
    multi = save_random_baseline(tmp_path / "multi", "cnn", labels, 0.5, conv_channels=[4, 8], n_mels=16,
                                 problem_type="multi_label_classification")
    out = tmp_path / "evaluation"
    assert _evaluate(single, data, out) == 0 and _evaluate(multi, data, out) == 0
    written = _written(out)
    assert written == {DATA_REPORT_FILE, metrics_file_name("train"), *report_file_names("train")}
    for name in written:
        alone = tmp_path / "alone" / name
        alone.mkdir(parents=True)
        shutil.copyfile(out / name, alone / name)
        (alone / "notes.txt").write_text("mine")
        _check_output_dir(str(alone))  # an earlier evaluation: no error
    (tmp_path / "users" / "notes.txt").parent.mkdir()
    (tmp_path / "users" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not an earlier evaluation"):
        _check_output_dir(str(tmp_path / "users"))


def test_stage_carries_every_report_of_a_runs_test_split():
    """A training run writes its test report with the same writers (split `test`): each of those files is
    published by `hfspeech stage`."""
    assert set(report_file_names("test")) <= set(REPORT_FILES)
