"""Classification metrics that need no network: the numbers of every report, training's evaluations and
cross-validation.

`evaluate.load("accuracy")` fetches a script from the Hub, which fails offline (and in CI). The numbers come from
scikit-learn, in two functions: `classification_scores` (single-label: accuracy, balanced accuracy, F1) and
`multi_label_scores` (multi-label: mAP, ROC-AUC, F1/precision/recall at per-class thresholds, subset accuracy).
`make_compute_metrics` gives the Trainer the one that fits the model's `problem_type`.

`ClassificationMetrics` and `MultiLabelMetrics` are the same numbers as `evaluate.Metric`s (`add_batch`/`compute`,
distributed gathering included), in `evaluation.evaluate_metrics`; asked for from here, they are imported then.
`evaluate` is not imported otherwise: its package imports transformers' pipelines, 7.7 of the 10 CPU seconds
`import hfspeech.evaluation.metrics` took, and it made `hfspeech evaluate` of an ONNX export import torch and
transformers.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, recall_score

from hfspeech.evaluation.per_class_scores import counts_scores, ranking_scores
from hfspeech.models.scores import is_multi_label, sigmoid, thresholds_from_config

# The dtypes evaluate's features store the inputs in (`evaluate_metrics`), which the functions cast to alike: float64
# scores are rounded to float32, so ties stay the ties they were, whichever way the numbers are asked for.
SINGLE_LABEL_DTYPES = {"predictions": np.int64, "references": np.int64}
MULTI_LABEL_DTYPES = {"predictions": np.float32, "references": np.int64}


def __getattr__(name: str):
    """`ClassificationMetrics` and `MultiLabelMetrics`, the `evaluate.Metric` forms, imported when first read."""
    if name in ("ClassificationMetrics", "MultiLabelMetrics"):
        from hfspeech.evaluation import evaluate_metrics

        return getattr(evaluate_metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def as_stored(predictions, references, dtypes: dict) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as evaluate would have stored them (`dtypes`), after evaluate's own checks: as many predictions as
    references, and whole numbers where the feature is an integer (evaluate refused 0.7 as class 0)."""
    if len(predictions) != len(references):
        raise ValueError(f"Mismatch in the number of predictions ({len(predictions)}) and references "
                         f"({len(references)})")
    return tuple(_stored(name, values, dtypes[name])
                 for name, values in (("predictions", predictions), ("references", references)))


def _stored(name: str, values, dtype) -> np.ndarray:
    given = np.asarray(values)
    stored = given.astype(dtype, copy=False)
    if stored.dtype.kind in "iu" and given.dtype.kind == "f" and not np.all(np.mod(given, 1) == 0):
        raise ValueError(f"Predictions and/or references don't match the expected format: {name} must be "
                         f"whole numbers ({stored.dtype}), as evaluate refused 0.7 as class 0")
    return stored


def classification_scores(predictions, references, labels: Optional[Sequence[int]] = None) -> dict[str, float]:
    """Class ids -> accuracy, balanced_accuracy, macro_f1, weighted_f1.

    A class of `labels` that is neither in `references` nor predicted has no F1 (nothing to get right or
    wrong) and is left out of the macro average, as sklearn's `zero_division=np.nan` does and as
    `multi_label_scores` does: counted as 0, it gave a perfect model evaluated on 5 of its 10 classes a
    macro-F1 of 0.5. A class that is predicted but absent from `references` (a false alarm) still counts, as 0.

    `balanced_accuracy` is the mean of the per-class recalls: UAR (unweighted average recall), the score of
    emotion and other imbalanced tasks, where accuracy rewards answering the majority class (0.59 for a model
    that says "neutral" to every clip of a 10:4:2:1 split, UAR 0.25). A class absent from `references` has no
    recall (no clip to find) and is left out of the mean, as sklearn's `balanced_accuracy_score` does (it warns)
    and as macro-F1 leaves out an undefined class; clips wrongly given such a class still lower the recall of
    their true class.
    """
    predictions, references = as_stored(predictions, references, SINGLE_LABEL_DTYPES)
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


def multi_label_scores(predictions, references, thresholds: Optional[Sequence[float]] = None,
                       label_names: Optional[Sequence[str]] = None, per_class: bool = False) -> dict:
    """Scores [N, C] and multi-hot truth [N, C] -> scalars.

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
    predictions, references = as_stored(predictions, references, MULTI_LABEL_DTYPES)
    scores = predictions.astype(np.float64)
    truth = (references > 0).astype(np.int64)
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
    logits -> sigmoid -> `multi_label_scores` at the thresholds in `config.label_thresholds`, read at
    each call, so evaluations after threshold tuning use the tuned ones.
    """
    multi_label = is_multi_label(config)

    def compute_metrics(eval_prediction) -> dict[str, float]:
        logits = eval_prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        if multi_label:
            references = (np.asarray(eval_prediction.label_ids) > 0.5).astype(np.int64)
            return multi_label_scores(sigmoid(logits), references, thresholds=thresholds_from_config(config))
        return classification_scores(np.argmax(logits, axis=-1), eval_prediction.label_ids,
                                     labels=list(range(num_labels)))

    return compute_metrics
