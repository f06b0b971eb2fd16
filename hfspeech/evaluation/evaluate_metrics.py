"""hfspeech's metrics as `evaluate.Metric`s: `ClassificationMetrics` and `MultiLabelMetrics`.

The same numbers as `evaluation.metrics`' `classification_scores` and `multi_label_scores` (which hfspeech itself
calls), behind evaluate's `add_batch`/`compute` interface, distributed gathering included, for code written against
it. A module of its own because `import evaluate` imports transformers' pipelines (seconds): `evaluation.metrics`
imports this module only when one of the two classes is read from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import datasets
import evaluate

from hfspeech.evaluation.metrics import classification_scores, multi_label_scores


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
        process) go straight to `_compute`, whose functions store them as evaluate would (`metrics.as_stored`).
        evaluate's own path encodes every value into an Arrow table and hands it back as Python lists: 100,000
        clips x 1,000 classes of multi-label scores became 10^8 Python floats (gigabytes, and more time than the
        metrics themselves)."""
        if predictions is None or references is None or self.writer is not None or self.num_process > 1:
            return super().compute(predictions=predictions, references=references, **kwargs)
        return self._compute(predictions, references, **kwargs)


class ClassificationMetrics(_InMemoryMetric):
    """`compute(predictions=[int], references=[int], labels=None)` -> accuracy, balanced_accuracy, macro_f1,
    weighted_f1: `metrics.classification_scores`, whose docstring says how undefined classes count."""

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

    def _compute(self, predictions, references, labels=None) -> dict[str, float]:
        return classification_scores(predictions, references, labels=labels)


class MultiLabelMetrics(_InMemoryMetric):
    """`compute(predictions=scores [N, C], references=multi-hot [N, C], thresholds=None, label_names=None,
    per_class=False)` -> mAP, ROC-AUC, F1/precision/recall and subset accuracy: `metrics.multi_label_scores`."""

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

    def _compute(self, predictions, references, thresholds=None, label_names=None, per_class=False) -> dict:
        return multi_label_scores(predictions, references, thresholds=thresholds, label_names=label_names,
                                  per_class=per_class)
