"""Classification metrics as `evaluate` metrics that need no network.

`evaluate.load("accuracy")` fetches a script from the Hub, which fails offline (and in CI). This module
holds local `evaluate.Metric`s -- same `add_batch`/`compute` interface, distributed gathering included --
whose numbers come from scikit-learn: `ClassificationMetrics` (single-label: accuracy, balanced accuracy, F1) and
`MultiLabelMetrics` (multi-label: mAP, ROC-AUC, F1/precision/recall at per-class thresholds, subset
accuracy). `make_compute_metrics` gives the Trainer the one that fits the model's `problem_type`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, recall_score

from hfspeech.evaluation.per_class_scores import counts_scores, ranking_scores
from hfspeech.models.scores import is_multi_label, sigmoid, thresholds_from_config


class _InMemoryMetric(evaluate.Metric):
    """An `evaluate.Metric` that keeps its predictions in memory and writes nothing under HF_HOME/metrics.

    Each process computes on the predictions the Trainer has already gathered, so evaluate's cache files have
    nothing to share. Written there, every evaluation copied the predictions to an Arrow file and left a lock
    file; DDP ranks, or two runs at once, found one another's lock taken, waited a second for it and left
    another, uniquely named, lock per evaluation."""

    def __init__(self, **kwargs):
        super().__init__(**{**kwargs, "keep_in_memory": True})

    def _build_data_dir(self) -> str:
        """The folder evaluate would use, named but not made: nothing is written in it."""
        return str(Path(self._data_dir_root) / self.name / self.config_name)

    def compute(self, *, predictions=None, references=None, **kwargs) -> Optional[dict]:
        """`evaluate.Metric.compute`, but predictions and references given whole (nothing added before, one
        process) go to `_compute` as arrays of the features' dtypes. evaluate's own path encodes every value into
        an Arrow table and hands it back as Python lists: 100,000 clips x 1,000 classes of multi-label scores
        became 10^8 Python floats (gigabytes, and more time than the metrics themselves)."""
        if predictions is None or references is None or self.writer is not None or self.num_process > 1:
            return super().compute(predictions=predictions, references=references, **kwargs)
        if len(predictions) != len(references):  # evaluate's own check, before anything is computed
            raise ValueError(f"Mismatch in the number of predictions ({len(predictions)}) and references "
                             f"({len(references)})")
        return self._compute(self._as_stored("predictions", predictions), self._as_stored("references", references),
                             **kwargs)

    def _as_stored(self, name: str, values) -> np.ndarray:
        """`values` as evaluate would have stored them: in the dtype of the feature (`Value` or a `Sequence` of
        one), so that float64 scores are rounded to float32 as before and ties stay the ties they were."""
        feature = self.info.features[name]
        given = np.asarray(values)
        stored = given.astype(getattr(feature, "feature", feature).dtype, copy=False)
        if stored.dtype.kind in "iu" and given.dtype.kind == "f" and not np.all(np.mod(given, 1) == 0):
            raise ValueError(f"Predictions and/or references don't match the expected format: {name} must be "
                             f"whole numbers ({stored.dtype}), as evaluate refused 0.7 as class 0")
        return stored


class ClassificationMetrics(_InMemoryMetric):
    """`compute(predictions=[int], references=[int], labels=None)` -> accuracy, balanced_accuracy, macro_f1,
    weighted_f1.

    A class of `labels` that is neither in `references` nor predicted has no F1 (nothing to get right or
    wrong) and is left out of the macro average, as sklearn's `zero_division=np.nan` does and as
    `MultiLabelMetrics` does: counted as 0, it gave a perfect model evaluated on 5 of its 10 classes a
    macro-F1 of 0.5. A class that is predicted but absent from `references` (a false alarm) still counts, as 0.

    `balanced_accuracy` is the mean of the per-class recalls: UAR (unweighted average recall), the score of
    emotion and other imbalanced tasks, where accuracy rewards answering the majority class (0.59 for a model
    that says "neutral" to every clip of a 10:4:2:1 split, UAR 0.25). A class absent from `references` has no
    recall (no clip to find) and is left out of the mean, as sklearn's `balanced_accuracy_score` does (it warns)
    and as macro-F1 leaves out an undefined class; clips wrongly given such a class still lower the recall of
    their true class.
    """

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Accuracy, balanced accuracy (UAR), macro-F1 and weighted-F1 for single-label "
                        "classification.",
            citation="",
            inputs_description="predictions and references: class ids (int); labels: all class ids (a class "
            "neither in references nor predicted is left out of the macro average).",
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, labels: Optional[Sequence[int]] = None) -> dict[str, float]:
        labels = list(labels) if labels is not None else None
        return {
            "accuracy": float(accuracy_score(references, predictions)),
            "balanced_accuracy": float(
                recall_score(references, predictions, labels=labels, average="macro", zero_division=np.nan)
            ),
            "macro_f1": float(f1_score(references, predictions, labels=labels, average="macro", zero_division=np.nan)),
            "weighted_f1": float(
                f1_score(references, predictions, labels=labels, average="weighted", zero_division=np.nan)
            ),
        }


class MultiLabelMetrics(_InMemoryMetric):
    """`compute(predictions=scores [N, C], references=multi-hot [N, C], thresholds=None)` -> scalars.

    - `map_macro`: mean over classes of sklearn's `average_precision_score` (threshold-free), over the
      classes with at least one positive in `references` (AP is undefined without one);
      `map_micro`: AP of all (clip, class) pairs pooled.
    - `roc_auc_macro`: mean ROC-AUC over the classes that have both positives and negatives; the
      others are skipped (ROC-AUC is undefined for them), and `roc_auc_num_classes` says how many
      counted (`nan` when none did).
    - `macro_f1`, `micro_f1`, `macro_precision`, `macro_recall`: of `scores >= thresholds` (one per
      class; default 0.5), averaged over the classes where each is defined (`f1_num_classes` counts
      F1's): a class with no positive in `references` has no recall, nor F1 or precision unless
      predicted (`_scores_at_thresholds`); `map_num_classes` counts mAP's classes.
    - `subset_accuracy`: share of clips whose predicted label set is exactly right.
    `per_class=True` (with `label_names`) adds `per_class`: {label: ap, roc_auc, f1, precision, recall,
    threshold, support}, for reports (not for the Trainer, whose metrics must be numbers).
    """

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="mAP, ROC-AUC, F1/precision/recall and subset accuracy for multi-label classification.",
            citation="",
            inputs_description="predictions: per-class scores (sigmoid) of each clip; references: the clip's "
            "multi-hot truth; thresholds: one decision threshold per class (default 0.5).",
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")),
                 "references": datasets.Sequence(datasets.Value("int64"))}
            ),
        )

    def _compute(self, predictions, references, thresholds: Optional[Sequence[float]] = None,
                 label_names: Optional[Sequence[str]] = None, per_class: bool = False) -> dict:
        scores = np.asarray(predictions, dtype=np.float64)
        truth = (np.asarray(references) > 0).astype(np.int64)
        num_labels = scores.shape[1]
        thresholds = np.full(num_labels, 0.5) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
        predicted = (scores >= thresholds).astype(np.int64)

        ap, auc = ranking_scores(truth, scores)  # nan where undefined: no positive / not both outcomes
        precision, recall, f1, support = _scores_at_thresholds(truth, predicted)
        metrics = {
            "map_macro": _mean(ap),
            "map_micro": float(average_precision_score(truth.ravel(), scores.ravel())) if truth.any() else float("nan"),
            "map_num_classes": int((~np.isnan(ap)).sum()),
            "roc_auc_macro": _mean(auc),
            "roc_auc_num_classes": int((~np.isnan(auc)).sum()),
            "macro_f1": _mean(f1),
            "f1_num_classes": int((~np.isnan(f1)).sum()),
            "micro_f1": float(counts_scores(truth.reshape(-1, 1), predicted.reshape(-1, 1))[2][0]),
            "macro_precision": _mean(precision),
            "macro_recall": _mean(recall),
            "subset_accuracy": float((truth == predicted).all(axis=1).mean()),
            "label_prevalence": float(truth.mean()),
        }
        if per_class:
            names = list(label_names) if label_names is not None else [str(c) for c in range(num_labels)]
            metrics["per_class"] = {
                name: {"ap": _number(ap[c]), "roc_auc": _number(auc[c]), "f1": _number(f1[c]),
                       "precision": _number(precision[c]), "recall": _number(recall[c]),
                       "threshold": float(thresholds[c]), "support": int(support[c])}
                for c, name in enumerate(names)
            }
        return metrics


def _number(value: float) -> Optional[float]:
    """JSON-friendly: None for an undefined value (a class whose AP, ROC-AUC, F1 ... cannot be computed)."""
    return None if np.isnan(value) else float(value)


def _mean(values: np.ndarray) -> float:
    """The macro average over the classes where the metric is defined (`nan` when it is defined for none)."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


def _scores_at_thresholds(truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-class precision, recall, F1 and support, `nan` where undefined rather than 0.

    A class without a positive in this split has no recall; if it is not predicted either, it has no
    precision or F1 (nothing to get right or wrong). Counted as 0 -- sklearn's `zero_division=0` --
    they pulled macro F1 down for a perfect model; they are left out of the macro averages, as
    sklearn's `zero_division=np.nan` does. A false alarm on such a class still counts (F1 and precision 0),
    and so does a class with positives that is never predicted (precision 0).
    Each class is scored as its own binary problem (positive label 1, all classes at once in
    `counts_scores`, with sklearn's numbers): sklearn reads a one-column
    indicator matrix as binary labels, and scored the *negative* class of a one-label model.
    """
    precision, recall, f1, support = counts_scores(truth, predicted)
    absent, unpredicted = support == 0, predicted.sum(axis=0) == 0
    recall = np.where(absent, np.nan, recall)
    precision, f1 = (np.where(absent & unpredicted, np.nan, value) for value in (precision, f1))
    return precision, recall, f1, support


# Names papers and other toolkits give the mean per-class recall (`balanced_accuracy` here, sklearn's name):
# `--metric_for_best_model uar` was refused with a list of names that did not say UAR was among them.
BALANCED_ACCURACY_NAMES = frozenset({"balanced_accuracy", "balanced_acc", "bacc", "uar", "unweighted_average_recall",
                                     "unweighted_recall", "macro_recall", "mean_recall", "recall"})


def means_balanced_accuracy(name: str) -> bool:
    """Whether a metric name (`eval_` prefix, case and dashes aside) is UAR under another name."""
    return name.lower().replace("-", "_").removeprefix("eval_") in BALANCED_ACCURACY_NAMES


def metric_names(compute_metrics, num_labels: int, multi_label: bool) -> set[str]:
    """The names `compute_metrics` returns (as `eval_NAME`), read from one call on a made-up evaluation of two
    clips (`made_up_evaluation`): the names are the metrics', whatever the values. Two clips per class (2L x L
    arrays) made the check before a multi-label run's training quadratic: 26 s and 6.9 GB at 6,000 labels."""
    from transformers import EvalPrediction

    logits, labels = made_up_evaluation(num_labels, multi_label)
    return set(compute_metrics(EvalPrediction(predictions=logits, label_ids=labels)))


def made_up_evaluation(num_labels: int, multi_label: bool) -> tuple[np.ndarray, np.ndarray]:
    """(logits [2, L], labels) of two clips, the first of class 0 and the second of the last class, each predicted
    right: O(L) values, whatever the number of labels."""
    logits = np.full((2, num_labels), -4.0)
    logits[0, 0] = logits[1, -1] = 4.0
    labels = (logits > 0).astype(np.float64) if multi_label else np.array([0, num_labels - 1])
    return logits, labels


def make_compute_metrics(num_labels: int, config=None):
    """The `compute_metrics` callback for `transformers.Trainer`.

    Single-label: logits -> argmax -> accuracy, balanced accuracy and F1. Multi-label (`config.problem_type` says so):
    logits -> sigmoid -> `MultiLabelMetrics` at the thresholds in `config.label_thresholds`, read at
    each call, so evaluations after threshold tuning use the tuned ones.
    """
    multi_label = is_multi_label(config)
    metric = MultiLabelMetrics() if multi_label else ClassificationMetrics()

    def compute_metrics(eval_prediction) -> dict[str, float]:
        logits = eval_prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        if multi_label:
            references = (np.asarray(eval_prediction.label_ids) > 0.5).astype(np.int64)
            return metric.compute(predictions=sigmoid(logits), references=references,
                                  thresholds=thresholds_from_config(config))
        predictions = np.argmax(logits, axis=-1)
        return metric.compute(
            predictions=predictions, references=eval_prediction.label_ids, labels=list(range(num_labels))
        )

    return compute_metrics
