"""Accuracy and macro-F1 as an `evaluate` metric that needs no network.

`evaluate.load("accuracy")` fetches a script from the Hub, which fails offline (and in CI). This module
is a local `evaluate.Metric` -- same `add_batch`/`compute` interface, distributed gathering included --
whose numbers come from scikit-learn.
"""

from __future__ import annotations

from typing import Optional, Sequence

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, f1_score


class ClassificationMetrics(evaluate.Metric):
    """`compute(predictions=[int], references=[int], labels=None)` -> accuracy, macro_f1, weighted_f1."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Accuracy, macro-F1 and weighted-F1 for single-label classification.",
            citation="",
            inputs_description="predictions and references: class ids (int); labels: all class ids, so that "
            "classes absent from a small evaluation set still count in the macro average.",
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, labels: Optional[Sequence[int]] = None) -> dict[str, float]:
        labels = list(labels) if labels is not None else None
        return {
            "accuracy": float(accuracy_score(references, predictions)),
            "macro_f1": float(f1_score(references, predictions, labels=labels, average="macro", zero_division=0)),
            "weighted_f1": float(
                f1_score(references, predictions, labels=labels, average="weighted", zero_division=0)
            ),
        }


def make_compute_metrics(num_labels: int):
    """The `compute_metrics` callback for `transformers.Trainer`: logits -> accuracy and F1."""
    metric = ClassificationMetrics()

    def compute_metrics(eval_prediction) -> dict[str, float]:
        logits = eval_prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        predictions = np.argmax(logits, axis=-1)
        return metric.compute(
            predictions=predictions, references=eval_prediction.label_ids, labels=list(range(num_labels))
        )

    return compute_metrics
