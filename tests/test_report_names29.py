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
from hfspeech.evaluation.report import write_evaluation_report, write_multilabel_report
from hfspeech.evaluation.report_names import metrics_file_name, report_file_names
from hfspeech.hub.stage import REPORT_FILES
from hfspeech.models.config_json import DATA_REPORT_FILE
from tests.conftest import TINY_CNN, TONE_CLASSES, save_random_baseline, write_tone_folder

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


@pytest.fixture(scope="module")
def multi_label_run(tmp_path_factory):
    """A multi-label CNN trained for one epoch through the recipe: it writes the other writer's test report."""
    from hfspeech.synthetic.events import generate_event_dataset
    from hfspeech.training.run import main

    events = generate_event_dataset(tmp_path_factory.mktemp("events"), num_clips=40, seed=0)
    output_dir = tmp_path_factory.mktemp("multilabel") / "cnn"
    main(["--train_file", str(events / "labels.csv"), "--problem_type", "multi_label_classification",
          "--output_dir", str(output_dir), "--config_overrides", TINY_CNN, "--num_train_epochs", "1",
          "--per_device_train_batch_size", "16", "--seed", "0", "--save_total_limit", "1",
          "--validation_split_percentage", "20", "--test_split_percentage", "20"])
    return output_dir


@pytest.mark.parametrize("run", ["trained_cnn", "multi_label_run"])
def test_stage_carries_every_test_report_a_training_run_writes(run, request, tmp_path):
    """A training run writes its test report (split `test`) with the evaluation's writers: every file of it that
    a real run wrote, single- or multi-label, is published by `hfspeech stage`; one the table lacked was left out
    of the repo without a word. (Checked against the run's files, not against the table stage reads.)"""
    from hfspeech.hub import stage_run

    run_dir = request.getfixturevalue(run)
    written = {path.name for path in run_dir.iterdir() if path.is_file() and path.name.startswith("test_")}
    assert written, f"{run_dir}: the run wrote no test report"
    staged = {path.name for path in stage_run(run_dir, tmp_path / "repo")}
    assert written <= staged and written <= set(REPORT_FILES)
