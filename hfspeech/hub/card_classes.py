"""The model card's per-class parts: the labels table and the per-class scores. A model of hundreds of classes
made the card a thousand lines of two tables that buried everything after them, so past ``COLLAPSE_AFTER``
classes each table goes inside `<details>`, which the Hub shows collapsed; the summary numbers (accuracy,
macro-F1, mAP, clip counts) are in the Results text above them and stay in view."""

from __future__ import annotations

from typing import Optional

from hfspeech.hub.card_markdown import label_text, markdown_table, number

COLLAPSE_AFTER = 30


def collapsed(table: str, summary: str, num_rows: int) -> str:
    """`table` as it is for a few rows; past COLLAPSE_AFTER rows folded under a `<summary>` line. The blank
    lines around it matter: without them markdown inside an HTML block is shown as raw text."""
    if not table or num_rows <= COLLAPSE_AFTER:
        return table
    return f"<details>\n<summary>{summary}</summary>\n\n{table}\n\n</details>"


def labels_table(labels: list[str], thresholds: Optional[list[float]] = None) -> str:
    """id and label, and each label's threshold for a multi-label model."""
    if thresholds is None:
        table = markdown_table(("id", "label"), [(i, label_text(label)) for i, label in enumerate(labels)])
    else:
        table = markdown_table(("id", "label", "threshold"), [(i, label_text(label), f"{t:.3f}")
                                                              for i, (label, t) in enumerate(zip(labels, thresholds))])
    return collapsed(table, f"All {len(labels)} labels", len(labels))


def per_class_table(report: dict, labels: list[str]) -> str:
    """Precision, recall, F1 and clips of each class in the test classification report."""
    rows = [(label_text(label), number(r.get("precision")), number(r.get("recall")), number(r.get("f1-score")),
             number(r.get("support"), 0)) for label, r in report.items() if label in labels and isinstance(r, dict)]
    table = markdown_table(("label", "precision", "recall", "F1", "clips"), rows) if rows else ""
    return collapsed(table, f"Precision, recall and F1 of each of the {len(rows)} classes", len(rows))


def multi_label_per_class_table(report: dict, labels: list[str], num_clips: Optional[int]) -> str:
    """Each label's AP against its chance level (its prevalence), ROC-AUC, and F1 at its threshold."""
    per_class = report.get("per_class", {})
    rows = []
    for label in labels:
        if label not in per_class:
            continue
        r = per_class[label]
        chance = number(r["support"] / num_clips) if num_clips else "n/a"
        rows.append((label_text(label), number(r.get("ap")), chance, number(r.get("roc_auc")), number(r.get("f1")),
                     number(r.get("precision")), number(r.get("recall")), number(r.get("threshold")),
                     int(r["support"])))
    if not rows:
        return ""
    table = markdown_table(("label", "AP", "chance AP (prevalence)", "ROC-AUC", "F1", "precision", "recall",
                            "threshold", "clips with it"), rows)
    return (collapsed(table, f"AP, ROC-AUC and F1 of each of the {len(rows)} labels", len(rows))
            + "\n\nn/a: not defined on this split (no clip with the label for AP, or only one outcome for ROC-AUC).")
