"""Classification loss chosen from ``config.problem_type``, as transformers' heads do.

Kept in one place so both baselines (and anything added later) train with the same rules as
``*ForSequenceClassification`` models, and a config saved after training records the
problem type the model was trained for (serving code needs it to pick softmax or sigmoid).
"""

import torch
from torch import nn

PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")


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
        return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    raise ValueError(f"Unknown problem_type {config.problem_type!r}; expected one of {PROBLEM_TYPES}")
