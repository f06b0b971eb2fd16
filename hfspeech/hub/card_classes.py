"""The model card's per-class parts: the labels table and the per-class scores. A model of hundreds of classes
made the card a thousand lines of two tables that buried everything after them, so past ``COLLAPSE_AFTER``
classes each table goes inside `<details>`, which the Hub shows collapsed; the summary numbers (accuracy,
macro-F1, mAP, clip counts) are in the Results text above them and stay in view, and so do the
``WEAKEST_SHOWN`` classes with the lowest F1 (AP for a multi-label model): in a folded table of a thousand
speakers in id order, the ones the model gets wrong were a scroll through every row away."""

from __future__ import annotations

from typing import Optional

from hfspeech.hub.card_markdown import label_text, markdown_table, measured, number

COLLAPSE_AFTER = 30
WEAKEST_SHOWN = 10


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
    known = set(labels)
    classes = [(label, r) for label, r in report.items() if label in known and isinstance(r, dict)]
    rows = [(label_text(label), number(r.get("precision")), number(r.get("recall")), number(r.get("f1-score")),
             number(r.get("support"), 0)) for label, r in classes]
    header = ("label", "precision", "recall", "F1", "clips")
    table = markdown_table(header, rows) if rows else ""
    return (weakest(header, rows, [r.get("f1-score") for _, r in classes], "classes with the lowest F1")
            + collapsed(table, f"Precision, recall and F1 of each of the {len(rows)} classes", len(rows)))


def weakest(header: tuple, rows: list, scores: list, what: str) -> str:
    """Above a table that will be folded, the `WEAKEST_SHOWN` rows with the lowest score (ties in table order;
    a class without the score on this split is left out), with a blank line after it; nothing for a short table."""
    scored = [(score, position) for position, score in enumerate(scores) if measured(score)]  # NaN: no AP here
    if len(rows) <= COLLAPSE_AFTER or not scored:
        return ""
    lowest = [rows[position] for _, position in sorted(scored)[:WEAKEST_SHOWN]]
    return f"The {len(lowest)} {what}:\n\n{markdown_table(header, lowest)}\n\n"


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
    header = ("label", "AP", "chance AP (prevalence)", "ROC-AUC", "F1", "precision", "recall", "threshold",
              "clips with it")
    table = markdown_table(header, rows)
    ap = [per_class[label].get("ap") for label in labels if label in per_class]
    return (weakest(header, rows, ap, "labels with the lowest AP")
            + collapsed(table, f"AP, ROC-AUC and F1 of each of the {len(rows)} labels", len(rows))
            + "\n\nn/a: not defined on this split (no clip with the label for AP, or only one outcome for ROC-AUC).")


def unscored_classes_note(report: dict, labels: list[str], split: str) -> str:
    """A sentence after the macro-F1 when some classes have no F1 (no clip in the split, never predicted: a null row
    of the report): macro-F1 is the mean over the others, and without saying so a model of 1,251 speakers tested on
    800 of them read as scored on all. Nothing when every class was scored."""
    unscored = [label for label in labels if isinstance(report.get(label), dict)
                and report[label].get("support") == 0 and report[label].get("f1-score") is None]
    if not unscored:
        return ""
    named = ", ".join(label_text(label) for label in unscored[:5]) + (
        f" and {len(unscored) - 5} more" if len(unscored) > 5 else "")
    return (f" {len(unscored)} of the {len(labels)} classes have no clip in the {split} split and were never "
            f"predicted ({named}): they have no F1, and macro-F1 is the mean over the other "
            f"{len(labels) - len(unscored)}.")
