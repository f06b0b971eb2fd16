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

from hfspeech.errors import HfspeechError
from hfspeech.evaluation.per_class_scores import best_f1_cuts
from hfspeech.models.scores import DEFAULT_THRESHOLD

# Training tunes a class only on at least this many validation positives: on one, the F1-optimal cut is that clip's
# score (an `alarm` tuned on one positive got 0.161 and was active on 14 of 20 held-out clips, 1 of them true).
MIN_TUNING_POSITIVES = 3


def tune_thresholds(scores: np.ndarray, references: np.ndarray, min_positives: int = 1) -> np.ndarray:
    """One threshold per class [num_labels] that maximises the class's F1 of `scores >= threshold`.

    `scores`: sigmoid scores [clips, num_labels]; `references`: multi-hot truth of the same shape.
    The candidates are the class's distinct scores (`sklearn.metrics.precision_recall_curve`); among
    those with the best F1 the highest wins, and the threshold is put halfway down to the next
    lower score, so the validation predictions are exactly the F1-optimal ones while a test clip
    scoring a little below the lowest detected validation positive still counts. A class with no
    positive in `references` keeps `DEFAULT_THRESHOLD` (there is no F1 to maximise), and so does one with fewer
    than `min_positives` (training passes `MIN_TUNING_POSITIVES`); the other classes' cuts do not depend on it.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():  # NaN sorted last made a class's cut NaN, silently reset to 0.5
        bad = int((~np.isfinite(scores)).any(axis=1).sum())
        raise HfspeechError(f"{bad} validation clip(s) scored NaN or infinity (the model's outputs overflowed, e.g. "
                            "in fp16): the label thresholds cannot be tuned on them; train in fp32 or bf16")
    positives = np.asarray(references) > 0
    cuts = best_f1_cuts(positives, scores)  # all classes at once, a block of columns at a time
    too_few = positives.sum(axis=0) < max(1, min_positives)
    return np.where(np.isnan(cuts) | too_few, DEFAULT_THRESHOLD, cuts)
