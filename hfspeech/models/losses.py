"""Classification loss chosen from ``config.problem_type``, as transformers' heads do.

Kept in one place so both baselines (and anything added later) train with the same rules as
``*ForSequenceClassification`` models, and a config saved after training records the
problem type the model was trained for (serving code needs it to pick softmax or sigmoid).
"""

from typing import Optional

import numpy as np
import torch
from torch import nn

from hfspeech.models.problem_types import PROBLEM_TYPES

MAX_POS_WEIGHT = 100.0


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, config) -> torch.Tensor:
    """MSE for regression, cross-entropy for single-label, BCE-with-logits for multi-label.

    When ``config.problem_type`` is None it is inferred and written back to the config, exactly
    like transformers: one label -> regression; integer labels -> single-label; otherwise
    multi-label.
    """
    num_labels = config.num_labels
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif num_labels > 1 and labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"

    labels = labels.to(logits.device)
    if config.problem_type == "regression":
        labels = labels.to(logits.dtype)
        if num_labels == 1:
            return nn.functional.mse_loss(logits.squeeze(), labels.squeeze())
        return nn.functional.mse_loss(logits, labels)
    if config.problem_type == "single_label_classification":
        return nn.functional.cross_entropy(logits.view(-1, num_labels), labels.view(-1))
    if config.problem_type == "multi_label_classification":
        return multi_label_loss(logits, labels)
    raise ValueError(f"Unknown problem_type {config.problem_type!r}; expected one of {PROBLEM_TYPES}")


def multi_label_loss(logits: torch.Tensor, labels: torch.Tensor, pos_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """BCE-with-logits over a multi-hot target [B, num_labels], averaged over clips and classes.

    ``pos_weight`` (one value per class) scales the positive term of each class: negatives/positives
    makes a rare class's positives count as much as its negatives (see ``pos_weight_from_counts``).
    """
    labels = labels.to(device=logits.device, dtype=torch.float32)
    if pos_weight is not None:
        pos_weight = torch.as_tensor(pos_weight, dtype=torch.float32, device=logits.device)
    return nn.functional.binary_cross_entropy_with_logits(logits.float(), labels, pos_weight=pos_weight)


def pos_weight_from_frequencies(multi_hot: np.ndarray, max_weight: float = MAX_POS_WEIGHT) -> np.ndarray:
    """`pos_weight_from_counts` of a multi-hot matrix [clips, num_labels]: its column sums and row count."""
    multi_hot = np.asarray(multi_hot, dtype=np.float64)
    return pos_weight_from_counts(multi_hot.sum(axis=0), len(multi_hot), max_weight)


def pos_weight_from_counts(positives: np.ndarray, clips: int, max_weight: float = MAX_POS_WEIGHT) -> np.ndarray:
    """Per-class negatives/positives from each class's clip count (`positives`) out of `clips`, clipped to
    [1/max, max]. Counts, not the multi-hot matrix they are the column sums of: at 100,000 clips x 1,000
    classes that matrix held 800 MB for a vector of 1,000 numbers.

    A class without positives (nothing to weigh) or without negatives gets 1.0. The clip keeps a class
    seen in a handful of clips out of thousands from dominating the loss with weights in the thousands.
    """
    positives = np.asarray(positives, dtype=np.float64)
    negatives = clips - positives
    weights = np.ones(len(positives))
    both = (positives > 0) & (negatives > 0)
    weights[both] = negatives[both] / positives[both]
    return np.clip(weights, 1.0 / max_weight, max_weight)
