"""The pooled out-of-fold score of a cross-validation, beside the mean of its folds' scores.

Each fold's test score is computed on that fold's held-out group alone, and their mean weighs every fold alike.
In a multi-label run the folds' class sets differ (a label absent from a group's clips is left out of that fold's
macro mAP), so the mean averages mAPs over different labels. Pooled, every clip is scored once, by the fold model
that did not train on it, and the metric is computed over all clips together: AP per label over every clip, macro
over the labels with a positive anywhere; single-label, accuracy, balanced accuracy (UAR) and macro-F1 of all the
held-out predictions, beside the majority-class accuracy (and a warning where every clip got one class).

The fold runs keep no per-clip scores, so each fold's saved model scores its held-out manifest afterwards, as
`hfspeech evaluate` scores a manifest (`evaluation.evaluate_model.score_split`: whole clips, in windows of the
training length, mean of the windows). The folds' own test scores come from the training run's test pass, which
scores so too (`training.test_pass`: its clips longer than `--max_length_seconds` whole, in windows; the others one
crop each, the same audio).
"""

from __future__ import annotations

import copy
import logging
from typing import Optional

import numpy as np

from hfspeech.data.progress_bars import datasets_bars_follow, stderr_is_terminal
from hfspeech.evaluation.evaluate_model import EvaluateArguments, ScoredSplit, score_split
from hfspeech.evaluation.metrics import classification_scores, multi_label_scores
from hfspeech.evaluation.report import left_out_classes, majority_class_baseline

logger = logging.getLogger("hfspeech.cross_validate")
POOLED_NOT_SCORED = "pooled_not_scored"  # cross_validation.json's reason where `pooled` is null
SCORED_AS = ("each clip scored once, by the fold model that did not train on it, as `hfspeech evaluate` scores "
             "(whole clip, windows, mean); the metrics computed over all clips together. The folds' test_* means "
             "weigh each fold alike, over the labels present in its held-out group")


def score_held_out(model_dir: str, fold_data, model_args, batch_size: int) -> ScoredSplit:
    """The fold's test manifest (`fold_data.test_file`) scored by its saved model in `model_dir`, with datasets' bars
    (its "Casting the dataset") only where stderr is a terminal, as `evaluate_model` draws them: in a log each
    redraw was a `\r` line."""
    held_out = copy.deepcopy(fold_data)
    held_out.train_file = held_out.validation_file = None
    arguments = EvaluateArguments(model=model_dir, batch_size=batch_size,
                                  trust_remote_code=bool(getattr(model_args, "trust_remote_code", False)))
    with datasets_bars_follow(not stderr_is_terminal()):
        return score_split(arguments, held_out.spec())


def score_fold(held_out: dict, group: str, model_dir: str, fold_data, model_args, batch_size: int) -> Optional[str]:
    """`score_held_out` into `held_out[group]`; None, or where it fails, one warning and the reason (returned):
    the fold trained fine, so a re-scoring failure costs the pooled score only, not the fold nor the folds after."""
    try:
        held_out[group] = score_held_out(model_dir, fold_data, model_args, batch_size)
        return None
    except Exception as error:
        reason = f"fold {group}: its held-out clips could not be re-scored ({type(error).__name__}: {error})"
        logger.warning("warning: %s; cross_validation.json gives no pooled score, the fold means stand", reason)
        return reason


def pooled_or_failure(held_out: dict, num_folds: int, failure: Optional[str]) -> Optional[dict]:
    """`pooled_scores` once every fold is scored; where scoring failed (the fold's, or pooling's own), the reason."""
    if failure is None and len(held_out) == num_folds:
        try:
            return pooled_scores(held_out)
        except Exception as error:
            failure = f"pooling the folds' scores failed ({type(error).__name__}: {error})"
            logger.warning("warning: %s; cross_validation.json gives no pooled score, the fold means stand", failure)
    return {"pooled": None, POOLED_NOT_SCORED: failure} if failure else None


def pooled_scores(held_out: dict[str, ScoredSplit]) -> dict:
    """The out-of-fold metrics of every fold's held-out clips pooled, in the first fold's label order (each fold's
    model names the same labels: every label has training clips in every fold)."""
    folds = list(held_out.values())
    names = folds[0].label_names
    order = [[fold.label_names.index(name) for name in names] for fold in folds]  # names[j] is fold's order[j]
    pooled = _pooled_multi_label(folds, order, names) if folds[0].multi_label else _pooled_single_label(folds, order)
    return {**pooled, "num_clips": sum(len(fold.references) for fold in folds), "scored_as": SCORED_AS}


def _pooled_multi_label(folds: list[ScoredSplit], order: list[list[int]], names: list[str]) -> dict:
    """mAP (AP per label over all clips, macro over the labels with a positive, `map_skipped_classes` naming the
    others) and ROC-AUC of the pooled scores; F1 and subset accuracy of the pooled decisions, each clip's at the
    thresholds of the fold model that scored it."""
    scores = np.concatenate([fold.scores[:, columns] for fold, columns in zip(folds, order)])
    truth = np.concatenate([fold.references[:, columns] for fold, columns in zip(folds, order)])
    decided = np.concatenate([fold.scores[:, columns] >= fold.thresholds[columns]
                              for fold, columns in zip(folds, order)]).astype(np.float64)
    ranked = multi_label_scores(scores, truth, label_names=names, per_class=True)
    at_thresholds = multi_label_scores(decided, truth)  # 1 >= 0.5 > 0
    pooled = {key: ranked[key] for key in ("map_macro", "map_micro", "map_num_classes", "roc_auc_macro",
                                           "roc_auc_num_classes")}
    pooled["map_skipped_classes"] = left_out_classes(ranked["per_class"])["map_skipped_classes"]
    pooled.update({key: at_thresholds[key] for key in ("macro_f1", "micro_f1", "f1_num_classes", "subset_accuracy")})
    return pooled


def _pooled_single_label(folds: list[ScoredSplit], order: list[list[int]]) -> dict:
    """Accuracy, balanced accuracy and macro-F1 of every held-out prediction together (`classification_scores`),
    with the majority-class accuracy they are to be read against (`evaluation.report.majority_class_baseline`)."""
    back = [np.argsort(columns) for columns in order]  # a fold's class id -> the pooled id
    predicted = np.concatenate([ids[fold.predicted] for fold, ids in zip(folds, back)])
    references = np.concatenate([ids[fold.references] for fold, ids in zip(folds, back)])
    scores = classification_scores(predicted, references, labels=list(range(len(order[0]))))
    return {**scores, **majority_class_baseline(predicted, references, folds[0].label_names, "held-out")}
