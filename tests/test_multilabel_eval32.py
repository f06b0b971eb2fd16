"""Multi-label evaluation leftovers: a held-out set in which no clip has an event (an event detector's false-alarm
set, refused before), the labels the macro averages leave out named in the report, and a cross-validation's pooled
out-of-fold scores beside the mean of its folds'."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sklearn.metrics import average_precision_score

from conftest import TINY_CNN, save_random_baseline
from hfspeech.cli import main as cli
from hfspeech.evaluation.report import write_multilabel_report
from hfspeech.inference.classifier import AudioClassifier
from tests.test_distill_cv_audit import cross_validate

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

LABELS = ["beep", "hum", "click"]


def event_model(folder: Path) -> Path:
    """A random tiny multi-label CNN: `hum` at threshold 0 fires on every clip, the others at their own."""
    return save_random_baseline(folder, "cnn", LABELS, 0.5, problem_type="multi_label_classification",
                                label_thresholds={"beep": 0.5, "hum": 0.0, "click": 0.6}, **json.loads(TINY_CNN))


def write_manifest(folder: Path, cells: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    with open(folder / "heldout.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "labels"])
        for i, cell in enumerate(cells):
            sf.write(folder / f"bg{i}.wav", (0.1 * rng.standard_normal(8000)).astype(np.float32), 16000)
            writer.writerow([f"bg{i}.wav", cell])
    return folder / "heldout.csv"


def test_evaluate_reports_the_false_alarms_of_a_set_with_no_event(tmp_path, capsys):
    """Every label cell empty (the usual background set of a detector): refused before, as the wrong column."""
    model = event_model(tmp_path / "model")
    manifest = write_manifest(tmp_path / "data", ["", "[]", "", "", ""])
    assert cli(["evaluate", "--model", str(model), "--test_file", str(manifest), "--output_dir",
                str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "test_metrics.json").read_text())
    classifier = AudioClassifier.from_pretrained(str(model))
    active = [classifier.classify_file(str(tmp_path / "data" / f"bg{i}.wav")).active_labels for i in range(5)]
    expected = {label: sum(label in clip for clip in active) for label in LABELS}  # as `hfspeech predict` marks them
    assert expected["hum"] == 5
    assert {label: row["false_positives"] for label, row in metrics["false_alarms_per_label"].items()} == expected
    assert metrics["false_alarms_per_label"]["hum"]["false_positive_rate"] == 1.0
    assert metrics["false_alarm_clips"] == 5 and metrics["false_positives"] == sum(expected.values())
    assert metrics["subset_accuracy"] == 0.0  # every clip has a false alarm
    assert all(metrics[name] is None for name in ("map_macro", "macro_f1", "micro_f1", "roc_auc_macro"))
    assert "no clip in this split has a label" in metrics["undefined_reason"]
    printed = json.loads(capsys.readouterr().out)  # null, not NaN: any JSON parser reads it
    assert printed["map_macro"] is None and printed["false_alarms_per_label"] == metrics["false_alarms_per_label"]
    report = json.loads((tmp_path / "eval" / "test_multilabel_report.json").read_text())
    assert report["map_skipped_classes"] == LABELS and report["false_alarms_per_label"]["hum"]["false_positives"] == 5


def test_a_written_cell_without_a_label_is_still_refused_beside_empty_ones(tmp_path, capsys):
    """Only cells that say "no event" make a false-alarm set; `;` is a cell whose labels were lost, named by row."""
    model = event_model(tmp_path / "model")
    manifest = write_manifest(tmp_path / "data", ["", ";", ""])
    assert cli(["evaluate", "--model", str(model), "--test_file", str(manifest), "--output_dir",
                str(tmp_path / "eval")]) == 2
    assert "row 2" in capsys.readouterr().err


def test_the_report_names_the_labels_each_macro_average_left_out(tmp_path):
    """Only their counts were written: with labels absent from a held-out set, the report did not say which."""
    scores = np.array([[0.9, 0.2, 0.7], [0.3, 0.8, 0.1], [0.6, 0.4, 0.2], [0.1, 0.7, 0.3]])
    truth = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]])  # click: no positive; a false alarm on clip 0
    metrics = write_multilabel_report(str(tmp_path), scores, truth, LABELS, [0.5, 0.5, 0.5])
    report = json.loads((tmp_path / "test_multilabel_report.json").read_text())
    assert report["map_skipped_classes"] == report["roc_auc_skipped_classes"] == ["click"]
    assert report["f1_skipped_classes"] == []  # its false alarm counts, as 0
    assert metrics["map_macro"] == pytest.approx(np.mean([average_precision_score(truth[:, c], scores[:, c])
                                                          for c in (0, 1)]))  # left out, not counted as 0
    assert (metrics["false_positives"], metrics["false_alarm_clips"]) == (1, 1)
    assert report["false_alarms_per_label"]["click"] == {"false_positives": 1, "false_positive_rate": 0.25}


def scored(labels: list[str], references, predicted=None, scores=None, thresholds=None):
    from hfspeech.evaluation.evaluate_model import ScoredSplit  # here: the other tests run on code without it

    multi = predicted is None
    return ScoredSplit("test", labels, multi, np.asarray(references), np.asarray(scores if multi else []),
                       np.asarray([] if multi else predicted), None if thresholds is None else np.asarray(thresholds),
                       report=None)


def test_pooled_single_label_scores_read_each_fold_in_its_own_label_order():
    """A fold model's class ids are its own: pooled, id 0 of the second fold is its `up`, not the first's `yes`."""
    from sklearn.metrics import f1_score

    from hfspeech.training.cross_validation_pooled import pooled_scores

    first, second = ["yes", "no", "up"], ["up", "yes", "no"]
    folds = {"a": scored(first, [0, 1, 2, 2], predicted=[0, 1, 2, 0]),
             "b": scored(second, [0, 1, 2], predicted=[0, 0, 2])}
    truth = [first[i] for i in (0, 1, 2, 2)] + [second[i] for i in (0, 1, 2)]
    predicted = [first[i] for i in (0, 1, 2, 0)] + [second[i] for i in (0, 0, 2)]
    pooled = pooled_scores(folds)
    assert pooled["accuracy"] == pytest.approx(5 / 7) and pooled["num_clips"] == 7
    assert pooled["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))


def test_a_multi_label_cross_validation_reports_the_pooled_out_of_fold_map(tmp_path):
    """Its summary averaged each fold's macro mAP over folds whose label sets differ (`up` is in no clip of cy);
    pooled, every clip is scored by the fold model that did not train on it and AP is over all clips."""
    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    cells = {"ann": ["yes", "no;up", "yes;no"], "bob": ["up", "no", "yes"], "cy": ["yes", "no", "yes;no"]}
    with open(folder / "all.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "speaker"])
        for speaker, labels in cells.items():
            for i, label in enumerate(labels):
                sf.write(folder / f"{speaker}-{i}.wav", (0.1 * rng.standard_normal(1600)).astype(np.float32), 16000)
                writer.writerow([f"{speaker}-{i}.wav", label, speaker])
    root = tmp_path / "cv"
    assert cross_validate(str(folder / "all.csv"), root, "--problem_type", "multi_label_classification") == 0
    summary = json.loads((root / "cross_validation.json").read_text())
    names, truth, scores = ["no", "up", "yes"], [], []
    for speaker, labels in cells.items():  # each clip scored by the model of the fold that held its speaker out
        classifier = AudioClassifier.from_pretrained(str(root / f"fold-{speaker}"))
        order = [classifier.config.label2id[name] for name in names]
        for i, label in enumerate(labels):
            scores.append(classifier.score_file(str(folder / f"{speaker}-{i}.wav")).scores[order])
            truth.append([name in label.split(";") for name in names])
    truth, scores = np.asarray(truth, dtype=int), np.asarray(scores)
    expected = np.mean([average_precision_score(truth[:, c], scores[:, c]) for c in range(3)])
    assert summary["pooled"]["map_macro"] == pytest.approx(expected, abs=1e-6)
    assert summary["pooled"]["num_clips"] == 9 and summary["pooled"]["map_num_classes"] == 3
    assert "test_map_macro" in summary and summary["folds"]["cy"]["test_map_num_classes"] == 2  # the mean stays


def test_evaluate_prints_undefined_scores_as_json_null(tmp_path, capsys):
    """Every clip with every label: ROC-AUC is undefined for each (one value), and evaluate printed `NaN`, which
    `jq` and most JSON parsers refuse (the metrics file already wrote null)."""
    model = event_model(tmp_path / "model")
    manifest = write_manifest(tmp_path / "data", ["beep;hum;click"] * 3)
    assert cli(["evaluate", "--model", str(model), "--test_file", str(manifest), "--output_dir",
                str(tmp_path / "eval")]) == 0
    out = capsys.readouterr().out
    assert "NaN" not in out
    assert json.loads(out)["roc_auc_macro"] is None
