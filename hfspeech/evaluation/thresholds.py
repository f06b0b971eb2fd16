"""Per-class decision thresholds of a multi-label model, tuned on the validation split.

A sigmoid score of 0.5 is the right cut only for a calibrated model on balanced classes; a rare class
usually needs a lower one. After training, each class gets the threshold that maximises its F1 on
the validation clips, and the model's config keeps them as `label_thresholds` ({label: threshold},
saved in config.json), so every consumer -- `hfspeech predict`, `hfspeech evaluate`, the pipeline,
an exported model (its folder keeps config.json) -- turns scores into labels the same way
(`hfspeech.models.scores` reads them).
"""

from __future__ import annotations

import numpy as np

from hfspeech.models.scores import DEFAULT_THRESHOLD


def tune_thresholds(scores: np.ndarray, references: np.ndarray) -> np.ndarray:
    """One threshold per class [num_labels] that maximises the class's F1 of `scores >= threshold`.

    `scores`: sigmoid scores [clips, num_labels]; `references`: multi-hot truth of the same shape.
    The candidates are the class's distinct scores (`sklearn.metrics.precision_recall_curve`); among
    those with the best F1 the highest wins, and the threshold is put halfway down to the next
    lower score, so the validation predictions are exactly the F1-optimal ones while a test clip
    scoring a little below the lowest detected validation positive still counts. A class with no
    positive in `references` keeps `DEFAULT_THRESHOLD` (there is no F1 to maximise).
    """
    from sklearn.metrics import precision_recall_curve  # here: inference reads thresholds without sklearn

    scores = np.asarray(scores, dtype=np.float64)
    references = np.asarray(references) > 0
    thresholds = np.full(scores.shape[1], DEFAULT_THRESHOLD)
    for c in range(scores.shape[1]):
        if not references[:, c].any():
            continue
        precision, recall, candidates = precision_recall_curve(references[:, c], scores[:, c])
        precision, recall = precision[: len(candidates)], recall[: len(candidates)]
        f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision),
                       where=precision + recall > 0)
        best = int(np.flatnonzero(f1 == f1.max())[-1])  # candidates ascend: the last is the highest
        below = scores[:, c][scores[:, c] < candidates[best]]
        thresholds[c] = (candidates[best] + below.max()) / 2 if below.size else candidates[best]
    return thresholds
