"""What a multi-label run adds to the recipe, kept out of `training.run` so its hooks there stay small.

- Before training (`multilabel_pos_weight`, `multilabel_metric`): the loss options (`pos_weight` from the train split's label frequencies; the
  single-label remedies -- class-weighted cross-entropy, oversampling -- are refused with a pointer
  to `--pos_weight_from_frequencies`), and `metric_for_best_model` moved from the single-label
  default `accuracy` (which a multi-label run does not compute) to macro mAP.
- After training: per-class thresholds tuned on the validation split and set as
  `config.label_thresholds` before the model is saved, and the test report (JSON + per-class PNG).
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np

from hfspeech.errors import UsageError, first_few
from hfspeech.evaluation.report import write_multilabel_report
from hfspeech.evaluation.thresholds import MIN_TUNING_POSITIVES, tune_thresholds
from hfspeech.models.scores import DEFAULT_THRESHOLD, sigmoid, thresholds_from_config, thresholds_to_dict
from hfspeech.models.losses import pos_weight_from_counts

logger = logging.getLogger("hfspeech.train")

DEFAULT_METRIC = "map_macro"
SINGLE_LABEL_DEFAULT_METRIC = "accuracy"  # TRAINING_DEFAULTS' choice, meaningless for multi-label


def multilabel_metric(metric_for_best_model: Optional[str]) -> Optional[str]:
    """The best-model metric of a multi-label run: the one asked for, or macro mAP instead of the default."""
    return DEFAULT_METRIC if metric_for_best_model in (None, SINGLE_LABEL_DEFAULT_METRIC) else metric_for_best_model


def multilabel_pos_weight(data_args, train_labels: Sequence[Sequence[int]],
                          label_names: Sequence[str]) -> Optional[np.ndarray]:
    """Check the options; returns `pos_weight` (or None)."""
    if data_args.class_weighted_loss or data_args.oversample:
        raise UsageError("--class_weighted_loss and --oversample are single-label remedies; for multi-label data "
                         "use --pos_weight_from_frequencies")
    counts = clips_per_label(train_labels, len(label_names))
    logger.info("multi-label: %.2f labels per clip; clips per label %s",
                counts.sum() / max(1, len(train_labels)), dict(zip(label_names, counts.tolist())))
    if not data_args.pos_weight_from_frequencies:
        return None
    pos_weight = pos_weight_from_counts(counts, len(train_labels), data_args.max_pos_weight)  # no clips x classes matrix
    logger.info("BCE pos_weight (negatives/positives, clipped at %s): %s", data_args.max_pos_weight,
                dict(zip(label_names, np.round(pos_weight, 3).tolist())))
    return pos_weight


def clips_per_label(train_labels: Sequence[Sequence[int]], num_labels: int) -> np.ndarray:
    """How many clips have each label (a label listed twice in a clip counted once), from the id lists: the
    multi-hot [clips, classes] matrix this was the column sums of held 800 MB at 100,000 clips x 1,000 classes,
    built on every multi-label run for one log line."""
    ids = [label for clip in train_labels for label in set(clip)]
    return np.bincount(np.asarray(ids, dtype=np.int64), minlength=num_labels)


def tune_label_thresholds(trainer, validation, label_names: Sequence[str]) -> dict[str, float]:
    """Per-class F1-optimal thresholds on `validation`, set as `model.config.label_thresholds`; a class with fewer
    than `MIN_TUNING_POSITIVES` validation positives keeps `DEFAULT_THRESHOLD`, warned."""
    if validation is None:
        thresholds = np.full(len(label_names), DEFAULT_THRESHOLD)
        logger.info("no validation split: every class keeps the threshold %s", DEFAULT_THRESHOLD)
    else:
        prediction = trainer.predict(validation, metric_key_prefix="validation")
        references = np.asarray(prediction.label_ids) > 0.5
        thresholds = tune_thresholds(sigmoid(_logits(prediction)), references, MIN_TUNING_POSITIVES)
        _warn_untuned(label_names, references.sum(axis=0))
    trainer.model.config.label_thresholds = thresholds_to_dict(label_names, thresholds)
    logger.info("label thresholds (all in config.json): %s", _thresholds_line(trainer.model.config.label_thresholds))
    return trainer.model.config.label_thresholds


def _warn_untuned(label_names: Sequence[str], positives: np.ndarray) -> None:
    """A warning line for the classes without a validation positive and one for those with too few to tune on:
    their active/inactive calls rest on an untuned 0.5 (each cut to 20 names, as the thresholds' log line)."""
    untuned = [name for name, count in zip(label_names, positives) if count == 0]
    if untuned:
        logger.warning("no positive in validation for %d class(es) (%s): not tuned, threshold %s",
                       len(untuned), first_few(untuned, 20), DEFAULT_THRESHOLD)
    few = [f"{name}: {count}" for name, count in zip(label_names, positives) if 0 < count < MIN_TUNING_POSITIVES]
    if few:
        logger.warning("fewer than %d positives in validation for %d class(es) (%s): too few to tune on, threshold %s",
                       MIN_TUNING_POSITIVES, len(few), first_few(few, 20), DEFAULT_THRESHOLD)


def _thresholds_line(thresholds: dict[str, float]) -> str:
    """The first 20 thresholds for the log: all of them made one line of 51,804 characters at 2,000 labels;
    config.json keeps every one."""
    return first_few([f"{name}: {value:.3g}" for name, value in thresholds.items()], 20)


def write_multilabel_test_report(output_dir: str, prediction, config, label_names: Sequence[str],
                                 prefix: str = "test", clips: Optional[str] = None) -> dict[str, float]:
    """The test report at the saved thresholds: `{prefix}_multilabel_report.json`, `{prefix}_per_class_ap.png`
    (its title naming `clips`, e.g. a run's validation clips in its `test_*` files)."""
    references = (np.asarray(prediction.label_ids) > 0.5).astype(np.int64)
    return write_multilabel_report(output_dir, sigmoid(_logits(prediction)), references, label_names,
                                   thresholds_from_config(config, label_names), prefix=prefix, clips=clips)


def _logits(prediction) -> np.ndarray:
    logits = prediction.predictions
    return logits[0] if isinstance(logits, tuple) else logits
