"""The evaluation files a run leaves behind: metrics, per-class report, confusion matrix (JSON and PNG), with the
majority-class accuracy to read an imbalanced split's scores against, and a warning when every clip got one class.

Multi-label runs get `write_multilabel_report` instead: a per-class report (AP, ROC-AUC, F1,
precision, recall, threshold, support) as JSON and a per-class bar chart of AP and F1 as PNG.
The figures are drawn in `evaluation.report_plots`; their titles name the clips scored as the warnings do
(`clips_called`): a run with no test split writes its validation clips' numbers to `test_*` files, and a folder
without split folders is datasets' `train` split, so a title of `{prefix}:` named clips that were not scored.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Optional, Sequence

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix

from hfspeech.evaluation.false_alarms import false_alarm_metrics, without_positives
from hfspeech.evaluation.metrics import classification_scores, multi_label_scores
from hfspeech.evaluation.report_plots import plot_confusion_matrix, plot_per_class_scores

from hfspeech.evaluation.report_names import (CLASSIFICATION_REPORT_JSON, CONFUSION_MATRIX_JSON, CONFUSION_MATRIX_PNG,
                                             MULTILABEL_REPORT_JSON, PER_CLASS_AP_PNG)

logger = logging.getLogger("hfspeech.evaluation")

def json_ready(value):
    """`value` with every NaN or infinite float as None (JSON null), in nested dicts and lists too: an
    undefined score (mAP of a split with no positive, a fold's undefined ROC-AUC) was written as a bare `NaN`,
    which Python reads back but `jq`, browsers and most JSON parsers refuse."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    return value


def write_metrics_json(path: str, metrics: dict) -> None:
    """A metrics file any JSON parser reads (`json_ready`)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(json_ready(metrics), f, indent=2)


def write_evaluation_report(output_dir: str, predictions: Sequence[int], references: Sequence[int],
                            label_names: Sequence[str], prefix: str = "test", clips: Optional[str] = None) -> dict:
    """Write `{prefix}_confusion_matrix.json/.png` and `{prefix}_classification_report.json`; return metrics.

    Rows of the confusion matrix are true labels, columns predicted labels, in `label_names` order. The metrics
    and the report hold `majority_class_baseline`'s numbers too (train's test pass and `hfspeech evaluate` alike);
    `clips` names the clips scored, in a warning and the PNG's title, where `{prefix} clips` would not (`test_*`
    files of a run's validation clips).
    """
    os.makedirs(output_dir, exist_ok=True)
    ids = list(range(len(label_names)))
    baseline = majority_class_baseline(predictions, references, label_names, prefix, clips)
    metrics = classification_scores(predictions, references, labels=ids) | baseline
    matrix = confusion_matrix(references, predictions, labels=ids)
    report = per_class_report(predictions, references, label_names, summary=baseline)
    write_confusion_matrix_json(os.path.join(output_dir, prefix + CONFUSION_MATRIX_JSON), matrix, label_names)
    with open(os.path.join(output_dir, prefix + CLASSIFICATION_REPORT_JSON), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    title = f"{clips_called(prefix, clips)}: accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}"
    plot_confusion_matrix(matrix, label_names, os.path.join(output_dir, prefix + CONFUSION_MATRIX_PNG), title=title)
    return metrics


def clips_called(split: str, clips: Optional[str] = None) -> str:
    """What a warning or a figure's title calls the clips scored: `clips` where given, else `{split} clips`."""
    return clips or f"{split} clips"


def majority_class_baseline(predictions: Sequence[int], references: Sequence[int], label_names: Sequence[str],
                            split: str, clips: Optional[str] = None) -> dict:
    """`majority_class_accuracy`, the accuracy of always answering the split's commonest class: the floor to read an
    imbalanced split's accuracy against. Where every clip of a split holding several classes got the same one,
    `one_class_predicted` says so (naming them `clips`, default `{split} clips`), logged once: an emotion model
    answering "neutral" to all 34 test clips of a 10:4:2:1 split read accuracy 0.588, no word said."""
    truth, predicted = np.asarray(references, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    share = np.bincount(truth).max() / truth.size if truth.size else float("nan")
    baseline = {"majority_class_accuracy": float(share)}
    if len(np.unique(truth)) > 1 and len(np.unique(predicted)) == 1:
        baseline["one_class_predicted"] = (f"every one of the {truth.size} {clips_called(split, clips)} was predicted "
                                           f"{label_names[predicted[0]]!r}; the majority-class accuracy is {share:.3f}")
        logger.warning("warning: %s", baseline["one_class_predicted"])
    return baseline


DENSE_MATRIX_MAX_CLASSES = 1000  # past this, the confusion-matrix JSON holds the nonzero cells only
SPARSE_LAYOUT = "nonzero cells"  # the `layout` of such a file (a dense one has no `layout`, as before)


def write_confusion_matrix_json(path: str, matrix: np.ndarray, label_names: Sequence[str]) -> None:
    """The matrix as JSON: `labels`, `rows` and `columns` (what they hold), and up to `DENSE_MATRIX_MAX_CLASSES`
    classes `matrix`, one matrix row a line (`indent=2` put every count on a line of its own: 4 million lines at
    2,000 classes). Past it, `"layout": "nonzero cells"` and `cells`, `[true id, predicted id, clips]` for every
    nonzero cell (ids index `labels`), the cells of one true label a line: a dense matrix grows with the square of
    the classes, 3 MB at 1,000, 27 MB at 3,000, 108 MB at 6,000 (and `hfspeech stage` copies it into the model
    repo), where the nonzero cells are never more than the clips scored. `read_confusion_matrix` reads either."""
    names = list(label_names)
    if len(names) <= DENSE_MATRIX_MAX_CLASSES:
        head = {"labels": names, "rows": "true label", "columns": "predicted label"}
        lines, key = (json.dumps(row) for row in np.asarray(matrix).tolist()), "matrix"
    else:
        head = {"labels": names, "rows": "true label", "columns": "predicted label", "layout": SPARSE_LAYOUT,
                "note": "cells: [true label id, predicted label id, clips] for every nonzero cell, ids indexing "
                        "labels; every other cell is 0 (`hfspeech.evaluation.report.read_confusion_matrix`)"}
        lines, key = _nonzero_cell_lines(matrix), "cells"
    text = json.dumps(head, indent=2)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f'{text[:-2]},\n  "{key}": [\n')
        f.write(",\n".join(f"    {line}" for line in lines))
        f.write("\n  ]\n}\n")


def _nonzero_cell_lines(matrix: np.ndarray):
    """One line of `[true, predicted, clips]` triples for each true label with a nonzero cell, made a row at a
    time (no list of the whole matrix)."""
    matrix = np.asarray(matrix)
    for true in np.flatnonzero(matrix.any(axis=1)).tolist():
        predicted = np.flatnonzero(matrix[true])
        yield ", ".join(f"[{true}, {p}, {c}]" for p, c in zip(predicted.tolist(), matrix[true, predicted].tolist()))


def read_confusion_matrix(path: str) -> tuple[list[str], np.ndarray]:
    """(labels, the matrix as an int64 array) of a `{split}_confusion_matrix.json`, dense or of nonzero cells."""
    with open(path, encoding="utf-8") as f:
        written = json.load(f)
    labels = written["labels"]
    if written.get("layout") != SPARSE_LAYOUT:
        return labels, np.asarray(written["matrix"], dtype=np.int64).reshape(len(labels), len(labels))
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    cells = np.asarray(written["cells"], dtype=np.int64).reshape(-1, 3)
    matrix[cells[:, 0], cells[:, 1]] = cells[:, 2]
    return labels, matrix


def per_class_report(predictions: Sequence[int], references: Sequence[int], label_names: Sequence[str],
                     summary: Optional[dict] = None) -> dict:
    """sklearn's `classification_report` (dict) over the classes in `references` or `predictions`, plus a
    row of nulls (support 0) for each class in neither, in `label_names` order; `summary`'s rows after sklearn's.

    Asked for every class with `zero_division=0`, the report gave a class that is neither in the split nor
    predicted precision, recall and F1 of 0 and its "macro avg" counted them: a perfect model scored on
    half its classes read 0.5. Its macro average now agrees with `classification_scores`' macro-F1. A ratio with
    nothing to divide (the recall of a class predicted but absent from the split, the precision of one never
    predicted) is null and left out of the macro average (`zero_division=nan`, as `classification_scores`): counted
    as 0, the macro recall (0.56) read below the same run's balanced accuracy (0.83) in metrics.json.
    A class named like a summary row (`accuracy`, `macro avg` ...) keeps its name, and that summary is written
    as `overall <name>`: before, one silently replaced the other.
    """
    seen = sorted(set(np.asarray(references).tolist()) | set(np.asarray(predictions).tolist()))
    report = _nan_as_null(classification_report(references, predictions, labels=seen, output_dict=True,
                                                zero_division=np.nan, target_names=[f"class {i}" for i in seen]))
    rows = {name: report.pop(f"class {i}") if i in seen else {"precision": None, "recall": None, "f1-score": None,
                                                              "support": 0.0} for i, name in enumerate(label_names)}
    report.update(summary or {})
    return {**rows, **{f"overall {key}" if key in rows else key: value for key, value in report.items()}}


def _nan_as_null(value):
    """`value` with every NaN float None (null in JSON, where NaN is not valid), through nested dicts."""
    if isinstance(value, dict):
        return {key: _nan_as_null(inner) for key, inner in value.items()}
    return None if isinstance(value, float) and value != value else value



def write_multilabel_report(
    output_dir: str, scores: np.ndarray, references: np.ndarray, label_names: Sequence[str],
    thresholds: Sequence[float], prefix: str = "test", per_label_false_alarms: bool = False,
    clips: Optional[str] = None,
) -> dict[str, float]:
    """Write `{prefix}_multilabel_report.json` and `{prefix}_per_class_ap.png`; return the scalar metrics, with the
    false alarms' (`evaluation.false_alarms`; `per_label_false_alarms`: their per-label table too, as `hfspeech
    evaluate` prints it). A split with no positive at all (a false-alarm set) has its undefined scores null and
    says why (`undefined_reason`).

    `scores`: sigmoid scores [clips, num_labels]; `references`: multi-hot truth; `thresholds`: the
    per-class decision thresholds the F1, precision, recall and subset accuracy are measured at; `clips`: what the
    figure's title calls the clips, where `{prefix} clips` would misname them (as `write_evaluation_report`'s).
    """
    os.makedirs(output_dir, exist_ok=True)
    truth = np.asarray(references, dtype=np.int64)
    metrics = multi_label_scores(scores, truth, thresholds=thresholds, label_names=list(label_names), per_class=True)
    per_class = metrics.pop("per_class")
    alarms, per_label = false_alarm_metrics(truth, np.asarray(scores, dtype=np.float64), thresholds, label_names)
    metrics.update(alarms)
    if not truth.any():
        metrics = without_positives(metrics)
    write_metrics_json(os.path.join(output_dir, prefix + MULTILABEL_REPORT_JSON), {
        "metrics": metrics, "per_class": per_class, **left_out_classes(per_class),
        "false_alarms_per_label": per_label,
        "note": "ap/roc_auc are null for a class with no positive (AP) or a single value (ROC-AUC) "
                "in this split; f1/precision/recall are at each class's threshold, recall is null for a "
                "class with no positive and f1/precision too when it is not predicted either; the "
                "macro averages leave null values out (map_num_classes, f1_num_classes, "
                "roc_auc_num_classes count the classes in them; *_skipped_classes name the ones left out)"})
    called = clips_called(prefix, clips)
    plot_per_class_scores(per_class, os.path.join(output_dir, prefix + PER_CLASS_AP_PNG), title=(
        f"{called}: mAP {metrics['map_macro']:.3f}, micro-F1 {metrics['micro_f1']:.3f}" if truth.any() else
        f"{called}: no event in any clip; false alarms on {alarms['false_alarm_clips']} of {len(truth)} clips"))
    return {**metrics, "false_alarms_per_label": per_label} if per_label_false_alarms else metrics


def left_out_classes(per_class: dict[str, dict]) -> dict[str, list[str]]:
    """The classes each macro average left out (its value null): mAP's have no positive in the split, ROC-AUC's
    a single value, F1's no positive and no prediction. Only the counts were written, and with some labels absent
    from a held-out set the report did not say which."""
    return {f"{name}_skipped_classes": [label for label, row in per_class.items() if row[key] is None]
            for name, key in (("map", "ap"), ("roc_auc", "roc_auc"), ("f1", "f1"))}
