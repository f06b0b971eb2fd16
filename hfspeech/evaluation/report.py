"""The evaluation files a run leaves behind: metrics, per-class report, confusion matrix (JSON and PNG)."""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix

from hfspeech.evaluation.metrics import ClassificationMetrics


def write_evaluation_report(
    output_dir: str, predictions: Sequence[int], references: Sequence[int], label_names: Sequence[str], prefix: str = "test"
) -> dict[str, float]:
    """Write `{prefix}_confusion_matrix.json/.png` and `{prefix}_classification_report.json`; return metrics.

    Rows of the confusion matrix are true labels, columns predicted labels, in `label_names` order.
    """
    os.makedirs(output_dir, exist_ok=True)
    ids = list(range(len(label_names)))
    metrics = ClassificationMetrics().compute(predictions=predictions, references=references, labels=ids)
    matrix = confusion_matrix(references, predictions, labels=ids)
    report = classification_report(
        references, predictions, labels=ids, target_names=list(label_names), output_dict=True, zero_division=0
    )
    with open(os.path.join(output_dir, f"{prefix}_confusion_matrix.json"), "w") as f:
        json.dump({"labels": list(label_names), "rows": "true label", "columns": "predicted label",
                   "matrix": matrix.tolist()}, f, indent=2)
    with open(os.path.join(output_dir, f"{prefix}_classification_report.json"), "w") as f:
        json.dump(report, f, indent=2)
    plot_confusion_matrix(matrix, label_names, os.path.join(output_dir, f"{prefix}_confusion_matrix.png"),
                          title=f"{prefix}: accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}")
    return metrics


def plot_confusion_matrix(matrix: np.ndarray, label_names: Sequence[str], path: str, title: str = "") -> None:
    """A labelled heat map with the count in each cell, rows normalised for the colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(label_names)
    size = max(4.0, 0.55 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    row_sums = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, row_sums, out=np.zeros(matrix.shape, dtype=float), where=row_sums > 0)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true label")
    ax.set_xticks(range(n), labels=label_names, rotation=45, ha="right")
    ax.set_yticks(range(n), labels=label_names)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    if n <= 40:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                        color="white" if shares[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
