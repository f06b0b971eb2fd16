"""Class imbalance: the imbalance flags into the `class_weights`, `sample_weights` and `pos_weight` that
`training.trainer.AudioClassificationTrainer` takes. Single-label data: a class-weighted loss or oversampling, both
from the training split's class counts; multi-label data: the BCE's `pos_weight` (`training.multilabel`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from hfspeech.training.flag_checks import refuse_both_imbalance_remedies


def inverse_frequency_weights(labels: Sequence[int], num_labels: int) -> np.ndarray:
    """Per-class weights n / (k * count), as scikit-learn's 'balanced'; an absent class gets weight 0."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_labels).astype(np.float64)
    weights = np.zeros(num_labels)
    present = counts > 0
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def loss_and_sampler_options(data_args, train_labels: Sequence, num_labels: int, multi_label: bool,
                             pos_weight: Optional[np.ndarray] = None) -> dict:
    """The Trainer's `class_weights`, `sample_weights` and `pos_weight` for the imbalance flags:
    `--class_weighted_loss` (single-label), `--oversample` (single-label), `pos_weight` (multi-label,
    `training.multilabel.multilabel_pos_weight`). Both single-label flags at once are refused: each evens the
    classes' shares of the loss, so together they reversed the imbalance (10:4:2:1 data: the rarest class took
    0.54 of the loss, the commonest 0.05)."""
    options = dict(class_weights=None, sample_weights=None, pos_weight=pos_weight)
    if multi_label:
        return options
    refuse_both_imbalance_remedies(data_args)
    if data_args.class_weighted_loss:
        options["class_weights"] = inverse_frequency_weights(train_labels, num_labels)
    if data_args.oversample:
        per_class = inverse_frequency_weights(train_labels, num_labels)
        options["sample_weights"] = per_class[np.asarray(train_labels)]
    return options
