"""False alarms of a multi-label (sound-event) model, and the held-out set that measures them: clips with no event.

An event detector is tested twice: on clips with events (mAP, F1) and on background-only clips, where the one
question is how often it fires. The second set has no positive at all, so mAP, ROC-AUC, F1, precision and recall
are undefined on it; what it measures is each label's false positives at the model's thresholds and the clips
with any false alarm. `hfspeech evaluate` refused such a set outright (the data stage takes a split in which no
clip has a label for the wrong column, as it is when training); `encode_labels(allow_no_event=True)` reads it as
the no-event set it is, and `false_alarm_metrics` gives its numbers (in every multi-label report, where they mean
the same). Numpy only: the report writers import it.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

# The scalar metrics that need a positive somewhere in the split: null (with this reason) on a no-event set, where
# F1 and precision read 0 for any false alarm and micro-F1 read 0 with none, each a number that meant nothing.
NEEDS_POSITIVES = ("map_macro", "map_micro", "roc_auc_macro", "macro_f1", "micro_f1", "macro_precision",
                   "macro_recall")
NO_POSITIVES_REASON = ("no clip in this split has a label (a no-event / false-alarm set): mAP, ROC-AUC, F1, "
                       "precision and recall need positives and are null; false_positives, false_alarm_clips and "
                       "false_alarms_per_label measure the false alarms at the thresholds")


def false_alarm_counts(truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per label, the clips predicted with it that lack it (false positives) and their share of the clips that
    lack it (the false-positive rate; `nan` where every clip has the label)."""
    negatives = (truth == 0)
    false_positives = (negatives & (predicted > 0)).sum(axis=0)
    counted = negatives.sum(axis=0)
    rate = np.divide(false_positives, counted, out=np.full(len(counted), np.nan), where=counted > 0)
    return false_positives.astype(np.int64), rate


def false_alarm_metrics(truth: np.ndarray, scores: np.ndarray, thresholds: Sequence[float],
                        label_names: Sequence[str]) -> tuple[dict, dict]:
    """(scalars, per label) of the false alarms at `thresholds`: `false_positives` (all labels' together),
    `false_alarm_clips` (clips with at least one active label they lack) and its share; per label its false
    positives and rate (`false_alarm_counts`)."""
    predicted = (scores >= np.asarray(thresholds, dtype=np.float64)).astype(np.int64)
    false_positives, rate = false_alarm_counts(truth, predicted)
    any_alarm = ((truth == 0) & (predicted > 0)).any(axis=1)
    scalars = {"false_positives": int(false_positives.sum()), "false_alarm_clips": int(any_alarm.sum()),
               "false_alarm_clip_share": float(any_alarm.mean()) if len(any_alarm) else float("nan")}
    per_label = {name: {"false_positives": int(false_positives[c]),
                        "false_positive_rate": None if math.isnan(rate[c]) else float(rate[c])}
                 for c, name in enumerate(label_names)}
    return scalars, per_label


def without_positives(metrics: dict) -> dict:
    """`metrics` of a split with no positive: those that need one (`NEEDS_POSITIVES`) as None (null in JSON, as
    `hfspeech evaluate` prints them too, where a `nan` printed as `NaN`), and the reason beside them."""
    return {**metrics, **{name: None for name in NEEDS_POSITIVES if name in metrics},
            "undefined_reason": NO_POSITIVES_REASON}
