"""Imbalanced single-label tasks (emotion: 10:4:2:1 classes): UAR as `balanced_accuracy` wherever accuracy and
macro-F1 are (Trainer's eval_*, the test report, cross-validate's pooled score) and selectable for the best model;
the majority-class accuracy in every single-label report, and a warning when a model gives every clip one class;
`--class_weighted_loss` with `--oversample` refused."""

from __future__ import annotations

import json
import logging
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from hfspeech.errors import UsageError
from hfspeech.evaluation.evaluate_model import ScoredSplit
from hfspeech.evaluation.metrics import ClassificationMetrics, make_compute_metrics
from hfspeech.evaluation.report import write_evaluation_report
from hfspeech.training.class_weights import loss_and_sampler_options
from hfspeech.training.cross_validation_pooled import pooled_scores
from hfspeech.training.trainer import check_best_model_metric
from tests.conftest import TINY_CNN, run_cli_output

EMOTIONS = ["neutral", "happy", "angry", "sad"]
IMBALANCED = [0] * 20 + [1] * 8 + [2] * 4 + [3] * 2  # one speaker's 34 test clips of the audit, 10:4:2:1


def sklearn_uar(references, predictions) -> float:
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": skipped, as ours does
        warnings.simplefilter("ignore")
        return balanced_accuracy_score(references, predictions)


def test_a_class_absent_from_the_references_is_left_out_of_balanced_accuracy():
    """Classes 2 and 3 have no clip: their recall is undefined and not averaged in (not counted as 0); the clip
    wrongly called 3 (a false alarm) still costs class 1 its recall."""
    references, predictions = [0, 0, 0, 1, 1], [0, 0, 1, 1, 3]
    metrics = ClassificationMetrics().compute(predictions=predictions, references=references, labels=[0, 1, 2, 3])
    assert metrics["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)  # not / 4
    assert metrics["balanced_accuracy"] == pytest.approx(sklearn_uar(references, predictions))


def test_the_trainer_gets_balanced_accuracy_as_eval_metric():
    logits = np.eye(4)[[0] * 20 + [1] * 8 + [0] * 4 + [0] * 2] * 3.0  # angry and sad never found
    metrics = make_compute_metrics(4)(SimpleNamespace(predictions=logits, label_ids=np.array(IMBALANCED)))
    assert metrics["balanced_accuracy"] == pytest.approx(0.5) and metrics["accuracy"] == pytest.approx(28 / 34)


def best_model_args(name: str) -> SimpleNamespace:
    return SimpleNamespace(metric_for_best_model=name, eval_strategy="epoch")


@pytest.mark.parametrize("name", ["balanced_accuracy", "eval_balanced_accuracy"])
def test_balanced_accuracy_can_choose_the_best_model(name):
    check_best_model_metric(best_model_args(name), make_compute_metrics(4), 4, multi_label=False)  # no error


@pytest.mark.parametrize("name", ["uar", "UAR", "macro_recall", "recall", "balanced_acc", "eval_uar"])
def test_uar_by_another_name_is_told_its_name_here(name):
    with pytest.raises(UsageError) as error:
        check_best_model_metric(best_model_args(name), make_compute_metrics(4), 4, multi_label=False)
    message = str(error.value)
    assert message.startswith(f"--metric_for_best_model {name}: ") and "\n" not in message
    assert message.endswith("give --metric_for_best_model balanced_accuracy"), message


def test_a_model_answering_one_class_is_warned_once_and_reported(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="hfspeech"):
        metrics = write_evaluation_report(str(tmp_path), [0] * 34, IMBALANCED, EMOTIONS, prefix="test")
    said = ("every one of the 34 test clips was predicted 'neutral'; the majority-class accuracy is 0.588")
    warned = [record.getMessage() for record in caplog.records if "every one of" in record.getMessage()]
    assert warned == [f"warning: {said}"]
    assert metrics["one_class_predicted"] == said
    assert metrics["majority_class_accuracy"] == pytest.approx(20 / 34) == metrics["accuracy"]
    assert metrics["balanced_accuracy"] == pytest.approx(0.25)
    report = json.loads((tmp_path / "test_classification_report.json").read_text())
    assert report["one_class_predicted"] == said and report["majority_class_accuracy"] == pytest.approx(20 / 34)


def test_the_majority_class_accuracy_is_reported_when_the_model_tells_classes_apart(tmp_path, caplog):
    predictions = [0] * 18 + [1] * 2 + [1] * 8 + [2] * 4 + [3] * 2
    with caplog.at_level(logging.WARNING, logger="hfspeech"):
        metrics = write_evaluation_report(str(tmp_path), predictions, IMBALANCED, EMOTIONS, prefix="validation")
    assert metrics["majority_class_accuracy"] == pytest.approx(20 / 34) and "one_class_predicted" not in metrics
    assert not [record for record in caplog.records if "every one of" in record.getMessage()]
    report = json.loads((tmp_path / "validation_classification_report.json").read_text())
    assert report["majority_class_accuracy"] == pytest.approx(20 / 34) and "one_class_predicted" not in report


def test_a_split_of_one_class_answered_with_it_is_not_warned(tmp_path):
    metrics = write_evaluation_report(str(tmp_path), [2] * 5, [2] * 5, EMOTIONS)  # one speaker's angry clips
    assert metrics["majority_class_accuracy"] == 1.0 and "one_class_predicted" not in metrics


def test_a_summary_name_that_is_a_label_keeps_the_label_row(tmp_path):
    labels = ["majority_class_accuracy", "other"]
    write_evaluation_report(str(tmp_path), [0, 0, 1], [0, 1, 1], labels)
    report = json.loads((tmp_path / "test_classification_report.json").read_text())
    assert report["majority_class_accuracy"]["support"] == 1
    assert report["overall majority_class_accuracy"] == pytest.approx(2 / 3)


def held_out(labels, references, predicted) -> ScoredSplit:
    scores = np.eye(len(labels))[predicted]
    return ScoredSplit("train", labels, False, np.asarray(references), scores, np.asarray(predicted), None, None)


def test_the_pooled_score_has_balanced_and_majority_class_accuracy(caplog):
    """Two folds, each model with its own label order; every held-out clip called neutral."""
    folds = {"george": held_out(EMOTIONS, IMBALANCED, [0] * 34),
             "lucas": held_out(EMOTIONS[::-1], [3 - label for label in IMBALANCED], [3] * 34)}
    with caplog.at_level(logging.WARNING, logger="hfspeech"):
        pooled = pooled_scores(folds)
    assert pooled["balanced_accuracy"] == pytest.approx(0.25)
    assert pooled["majority_class_accuracy"] == pytest.approx(20 / 34) == pooled["accuracy"]
    assert pooled["one_class_predicted"].startswith("every one of the 68 held-out clips was predicted 'neutral'")


def test_class_weighted_loss_and_oversample_together_are_refused():
    both = SimpleNamespace(class_weighted_loss=True, oversample=True)
    with pytest.raises(UsageError) as error:
        loss_and_sampler_options(both, IMBALANCED, 4, multi_label=False)
    message = str(error.value)
    assert "--class_weighted_loss" in message and "--oversample" in message and "give one" in message
    for one in (SimpleNamespace(class_weighted_loss=True, oversample=False),
                SimpleNamespace(class_weighted_loss=False, oversample=True)):
        loss_and_sampler_options(one, IMBALANCED, 4, multi_label=False)  # each alone still works


def test_a_run_with_both_imbalance_flags_stops_in_one_line(tone_folder, tmp_path, capsys):
    code, _, err = run_cli_output(["train", "--data_dir", str(tone_folder), "--output_dir", str(tmp_path / "out"),
                                   "--config_overrides", TINY_CNN, "--max_steps", "1", "--max_length_seconds", "0.5",
                                   "--class_weighted_loss", "--oversample"], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and "Traceback" not in err and len(errors) == 1, err
    assert "--class_weighted_loss and --oversample: each balances the classes on its own" in errors[0]
    assert "clips" not in err and not (tmp_path / "out").exists()  # refused as the flags are read: nothing decoded


def test_a_run_chooses_by_balanced_accuracy_and_records_it(tone_folder, tmp_path, capsys):
    """Through the recipe: the best model by validation UAR, and UAR and the majority-class accuracy in metrics.json
    beside accuracy (eval_* of the Trainer, test_* of the test report)."""
    output_dir = tmp_path / "out"
    code, _, err = run_cli_output(["train", "--data_dir", str(tone_folder), "--output_dir", str(output_dir),
                                   "--config_overrides", TINY_CNN, "--num_train_epochs", "3", "--max_length_seconds",
                                   "0.5", "--metric_for_best_model", "balanced_accuracy"], capsys)
    assert code == 0, err
    metrics = json.loads((output_dir / "metrics.json").read_text())
    for name in ("eval_balanced_accuracy", "test_balanced_accuracy", "test_majority_class_accuracy"):
        assert 0 <= metrics[name] <= 1, (name, metrics)
    state = json.loads((output_dir / "trainer_state.json").read_text())
    chosen_by = [entry["eval_balanced_accuracy"] for entry in state["log_history"] if "eval_balanced_accuracy" in entry]
    assert len(chosen_by) >= 3 and state["best_metric"] == pytest.approx(max(chosen_by))
    assert state["best_metric"] == pytest.approx(metrics["eval_balanced_accuracy"])
