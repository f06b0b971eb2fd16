"""Per-class AP, ROC-AUC and precision/recall/F1 of a [clips, classes] score matrix, all classes at once.

The multi-label metrics (`metrics.multi_label_scores`) used to make one scikit-learn call per class and metric: about
3 s at AudioSet's 527 classes x 2,000 clips, paid at every evaluation of a training run. Here each score column is
sorted once with numpy and every class is read from the same cumulative counts. The numbers are scikit-learn's
(`average_precision_score`, `roc_auc_score`, `precision_recall_fscore_support(zero_division=0)`): tied
scores form one threshold, as in sklearn's `_binary_clf_curve`; tests/test_multilabel_metrics_fast27.py
checks them against sklearn class by class, ties and degenerate classes included.
"""

from __future__ import annotations

import numpy as np

# Scores ranked at once by `ranking_scores` (a block of whole columns, at least one): ~10 int64 arrays of this
# many elements, 32 MB each, are alive at the peak.
BLOCK_ELEMENTS = 2**22


def _counts_at_thresholds(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per column, sorted by descending score: true and false positives above each row, the rows that
    close a run of tied scores -- the only rows that are thresholds (ties enter the curve together) -- and the
    sorted scores."""
    order = np.argsort(-scores, axis=0, kind="stable")
    ranked_scores = np.take_along_axis(scores, order, axis=0)
    true_positives = np.cumsum(np.take_along_axis(truth, order, axis=0), axis=0)
    false_positives = np.arange(1, len(scores) + 1)[:, None] - true_positives
    closes_tie = np.ones(scores.shape, dtype=bool)
    closes_tie[:-1] = ranked_scores[:-1] != ranked_scores[1:]
    return true_positives, false_positives, closes_tie, ranked_scores


def _column_blocks(truth: np.ndarray, scores: np.ndarray):
    """(truth, scores) of whole columns, about `BLOCK_ELEMENTS` scores at a time (at least one column)."""
    block = max(1, BLOCK_ELEMENTS // max(1, scores.shape[0]))
    for start in range(0, scores.shape[1], block):
        yield truth[:, start:start + block], scores[:, start:start + block]


def _at_previous_threshold(counts: np.ndarray, closes_tie: np.ndarray) -> np.ndarray:
    """For each row, the count at the threshold before it (0 before the first): counts never decrease
    down a column, so that is the running maximum of the threshold rows' counts, shifted one row."""
    at_thresholds = np.maximum.accumulate(np.where(closes_tie, counts, 0), axis=0)
    return np.vstack([np.zeros((1, counts.shape[1]), dtype=counts.dtype), at_thresholds[:-1]])


def ranking_scores(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class (average precision, ROC-AUC); `nan` where undefined: AP without a positive, ROC-AUC
    without both a positive and a negative (sklearn raises or warns there; callers skip those classes).

    Classes are scored a block of columns at a time (`BLOCK_ELEMENTS` scores): every step makes a [clips,
    classes] array of its own, and all classes at once held about ten times the score matrix (7 GB at
    100,000 clips x 1,000 classes) where one block holds a few hundred MB whatever the number of classes.
    """
    if scores.shape[0] == 0:
        return np.full(scores.shape[1], np.nan), np.full(scores.shape[1], np.nan)
    parts = [_block_ranking_scores(truth_block, score_block)
             for truth_block, score_block in _column_blocks(truth, scores)]
    return np.concatenate([ap for ap, _ in parts]), np.concatenate([auc for _, auc in parts])


def _block_ranking_scores(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`ranking_scores` of some columns. AP = sum over thresholds of (recall gained) x precision, as sklearn's
    step-wise (uninterpolated) AP. ROC-AUC = trapezoid area under the (false positives, true positives) steps,
    summed in integers and divided once by positives x negatives."""
    true_positives, false_positives, closes_tie, _ = _counts_at_thresholds(truth.astype(np.int64), scores)
    positives, negatives = true_positives[-1], false_positives[-1]
    previous_tp = _at_previous_threshold(true_positives, closes_tie)
    previous_fp = _at_previous_threshold(false_positives, closes_tie)
    recall_gained = np.where(closes_tie, true_positives - previous_tp, 0)
    precision = true_positives / (true_positives + false_positives)
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = (recall_gained * precision).sum(axis=0) / positives
        doubled_area = (np.where(closes_tie, false_positives - previous_fp, 0)
                        * (true_positives + previous_tp)).sum(axis=0)
        auc = doubled_area / (2.0 * positives * negatives)
    ap[positives == 0] = np.nan
    auc[(positives == 0) | (negatives == 0)] = np.nan
    return ap, auc


def best_f1_cuts(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per class, the threshold `evaluation.thresholds.tune_thresholds` describes: the highest of the cuts with the
    best F1 of `scores >= cut`, put halfway down to the next lower score; `nan` for a class without a positive.
    The F1 values are sklearn's `precision_recall_curve`'s, computed with the same operations, so the cuts are the
    ones a loop over its classes chose (that loop took 12 s at 10,000 clips x 527 classes, minutes at 100,000)."""
    if scores.shape[0] == 0 or scores.shape[1] == 0:
        return np.full(scores.shape[1], np.nan)
    return np.concatenate([_block_best_f1_cuts(truth_block, score_block)
                           for truth_block, score_block in _column_blocks(truth, scores)])


def _block_best_f1_cuts(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """`best_f1_cuts` of some columns: in descending order the first threshold row with the best F1 is the highest
    cut, and the row after it (a tie's last row is followed by a lower score) holds the next lower score."""
    true_positives, false_positives, closes_tie, ranked = _counts_at_thresholds(truth.astype(np.int64), scores)
    positives = true_positives[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = true_positives / (true_positives + false_positives)
        recall = true_positives / positives
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    best = np.argmax(np.where(closes_tie, f1, -1.0), axis=0)
    columns = np.arange(scores.shape[1])
    cut = ranked[best, columns]
    has_lower = best + 1 < len(scores)
    lower = ranked[np.where(has_lower, best + 1, best), columns]
    return np.where(positives == 0, np.nan, np.where(has_lower, (cut + lower) / 2, cut))


def counts_scores(truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-class precision, recall, F1 (0 where the denominator is 0, as sklearn's `zero_division=0`)
    and support, of binary decisions; F1 = 2 tp / (support + predicted), sklearn's formula."""
    true_positives = (truth.astype(bool) & predicted.astype(bool)).sum(axis=0).astype(np.float64)
    support = truth.astype(bool).sum(axis=0)
    predicted_count = predicted.astype(bool).sum(axis=0)

    def divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
        return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)

    return (divide(true_positives, predicted_count), divide(true_positives, support),
            divide(2 * true_positives, support + predicted_count), support.astype(np.int64))
