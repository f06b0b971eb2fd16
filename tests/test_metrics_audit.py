"""The numbers an evaluation reports, checked against scikit-learn and against what `hfspeech predict` decides."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from sklearn.metrics import f1_score

from hfspeech.cli import main as cli
from hfspeech.evaluation.metrics import ClassificationMetrics, MultiLabelMetrics
from hfspeech.evaluation.report import write_evaluation_report
from hfspeech.inference.classifier import AudioClassifier
from tests.conftest import save_random_baseline, synth_clip
from tests.test_balanced33 import sklearn_uar

WINDOWS = {"window_seconds": 0.25, "hop_seconds": 0.25}


def test_a_perfect_model_scored_on_some_of_its_classes_has_macro_f1_one(tmp_path):
    references = [0, 1, 2, 3, 4] * 3  # a 10-class model evaluated on the clips of 5 classes
    metrics = write_evaluation_report(str(tmp_path), references, references, [str(i) for i in range(10)])
    assert metrics["macro_f1"] == 1.0  # was 0.5: the 5 absent classes counted as F1 0
    report = json.loads((tmp_path / "test_classification_report.json").read_text())
    assert report["macro avg"]["f1-score"] == 1.0 and report["accuracy"] == 1.0
    assert report["7"] == {"precision": None, "recall": None, "f1-score": None, "support": 0}


def test_single_label_f1_matches_sklearn_on_random_predictions():
    rng = np.random.default_rng(0)
    for _ in range(40):
        num_labels, n = int(rng.integers(2, 8)), int(rng.integers(1, 30))
        references, predictions = rng.integers(0, num_labels, n), rng.integers(0, num_labels, n)
        metrics = ClassificationMetrics().compute(predictions=predictions, references=references,
                                                  labels=list(range(num_labels)))
        # sklearn's own default: the classes in references or predictions (a false alarm counts as 0)
        assert metrics["macro_f1"] == pytest.approx(f1_score(references, predictions, average="macro"))
        assert metrics["weighted_f1"] == pytest.approx(f1_score(references, predictions, average="weighted"))
        assert metrics["balanced_accuracy"] == pytest.approx(sklearn_uar(references, predictions))  # UAR (session 33)


def test_a_one_label_multi_label_model_is_scored_on_its_positive_class():
    truth = np.array([[1], [1], [0], [0], [0]])
    scores = np.array([[0.9], [0.3], [0.1], [0.2], [0.2]])  # one hit, one miss, no false alarm
    metrics = MultiLabelMetrics().compute(predictions=scores, references=truth, label_names=["dog"], per_class=True)
    # was the negative class's: precision 0.75, recall 1, F1 0.857, support 3, micro-F1 0.8
    assert metrics["per_class"]["dog"] == {"ap": 1.0, "roc_auc": 1.0, "f1": pytest.approx(2 / 3), "precision": 1.0,
                                           "recall": 0.5, "threshold": 0.5, "support": 2}
    assert metrics["macro_f1"] == metrics["micro_f1"] == pytest.approx(2 / 3)


def test_multi_label_f1_matches_counts_by_hand_for_any_number_of_labels():
    rng = np.random.default_rng(1)
    for _ in range(30):
        num_labels, n = int(rng.integers(1, 4)), int(rng.integers(1, 15))
        truth = (rng.random((n, num_labels)) < 0.4).astype(int)
        predicted = (rng.random((n, num_labels)) < 0.4).astype(int)
        metrics = MultiLabelMetrics().compute(predictions=predicted.astype(float), references=truth)
        tp, fp, fn = (truth & predicted).sum(0), ((1 - truth) & predicted).sum(0), (truth & (1 - predicted)).sum(0)
        micro = 2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum()) if (tp + fp + fn).sum() else 0.0
        defined = tp + fp + fn > 0
        assert metrics["micro_f1"] == pytest.approx(micro)
        if defined.any():
            assert metrics["macro_f1"] == pytest.approx(np.mean((2 * tp / np.maximum(1, 2 * tp + fp + fn))[defined]))


def test_evaluate_with_vote_reports_the_labels_predict_gives(tmp_path):
    """Two windows voting for different labels: `predict` breaks the tie by the windows' mean score; evaluate took
    the first label id instead, so its accuracy was not that of the labels users get."""
    model = save_random_baseline(tmp_path / "model", "cnn", ["a", "b", "c"], initializer_range=0.02,
                                 conv_channels=[4, 8], n_mels=16)  # this one calls a low tone "a", noise "c"
    classifier = AudioClassifier.from_pretrained(str(model))
    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        path = tmp_path / f"clip{i}.wav"
        halves = [synth_clip("low", rng, 16000, 0.25), synth_clip("noise" if i % 2 else "low", rng, 16000, 0.25)]
        sf.write(path, np.concatenate(halves), 16000)
        prediction = classifier.classify_file(str(path), top_k=2, aggregate="vote", **WINDOWS)
        rows.append({"path": str(path), "label": prediction.labels[0], "votes": prediction.scores})
    assert [0.5, 0.5] in [row["votes"] for row in rows] and "c" in [row["label"] for row in rows]  # a tie "c" won
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "eval"
    assert cli(["evaluate", "--model", str(model), "--test_file", str(tmp_path / "test.jsonl"), "--output_dir",
                str(out), "--aggregate", "vote", "--window_seconds", "0.25", "--hop_seconds", "0.25"]) == 0
    assert json.loads((out / "test_metrics.json").read_text())["accuracy"] == 1.0  # labelled with predict's answers


def test_evaluate_with_vote_reads_a_multi_label_model_as_predict_does(tmp_path):
    """With `vote` a clip's scores are shares of windows, and `predict` marks a label active for at least half of
    them; evaluate compared the shares with the saved per-label thresholds (0.3 here), so a label one window in
    three had was scored as predicted."""
    thresholds = {"a": 0.3, "b": 0.2, "c": 0.3}
    model = save_random_baseline(tmp_path / "model", "cnn", list(thresholds), initializer_range=0.5,
                                 conv_channels=[4, 8], n_mels=16, problem_type="multi_label_classification",
                                 label_thresholds=thresholds)
    classifier = AudioClassifier.from_pretrained(str(model))
    rng = np.random.default_rng(0)
    rows = []
    for i, kinds in enumerate([("low", "high", "high"), ("low", "low", "high"), ("low", "noise", "high")] * 2):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, np.concatenate([synth_clip(kind, rng, 16000, 0.25) for kind in kinds]), 16000)
        prediction = classifier.classify_file(str(path), aggregate="vote", **WINDOWS)
        rows.append({"path": str(path), "labels": prediction.active_labels})
        shares = dict(zip(prediction.labels, prediction.scores))
        if kinds[1] == "high":  # one window in three: under half, over the saved thresholds
            assert prediction.active_labels == [] and all(0.3 <= share < 0.5 for share in shares.values()), shares
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "eval"
    assert cli(["evaluate", "--model", str(model), "--test_file", str(tmp_path / "test.jsonl"), "--output_dir",
                str(out), "--aggregate", "vote", *(f"--{k}={v}" for k, v in WINDOWS.items())]) == 0
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert metrics["subset_accuracy"] == 1.0 and metrics["micro_f1"] == 1.0  # labelled with predict's answers
    assert metrics["label_thresholds"] == {"a": 0.5, "b": 0.5, "c": 0.5}  # the cut the F1 was measured at


def test_the_reports_macro_recall_is_the_runs_balanced_accuracy():
    """A class predicted but absent from the split (`c`) had recall 0 in the classification report, so its macro
    recall (0.56) read below metrics.json's balanced accuracy (0.83) for the same run (audit NC); a ratio with nothing
    to divide is now null, strict JSON, and left out of the macro averages."""
    import json

    from sklearn.metrics import balanced_accuracy_score

    from hfspeech.evaluation.report import per_class_report

    for predictions, references in (([0, 0, 2, 1], [0, 0, 0, 1]), ([0, 0, 0, 1], [0, 0, 2, 1])):
        report = json.loads(json.dumps(per_class_report(predictions, references, ["a", "b", "c"]), allow_nan=False))
        assert report["macro avg"]["recall"] == pytest.approx(balanced_accuracy_score(references, predictions))
    assert report["c"]["precision"] is None and report["c"]["recall"] == 0.0  # never predicted: no precision
