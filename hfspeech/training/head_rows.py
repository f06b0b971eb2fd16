"""A pretrained head's rows kept with their labels when a run orders the same labels otherwise (moved out of
`training.model_setup`, which builds the model and calls it)."""

from __future__ import annotations

import logging
from typing import Optional

import torch
from torch import nn

from hfspeech.errors import UsageError
from hfspeech.models.scores import unnamed_labels

logger = logging.getLogger("hfspeech.train")


def _output_layer(model) -> Optional[nn.Linear]:
    """The linear layer whose rows are the labels: `classifier` (Wav2Vec2, Whisper, the baselines) or the last
    linear in it (AST's `classifier.dense`)."""
    head = getattr(model, "classifier", None)
    layers = [module for module in head.modules() if isinstance(module, nn.Linear)
              and module.out_features == model.config.num_labels] if isinstance(head, nn.Module) else []
    return layers[-1] if layers else None


def keep_head_rows_with_their_labels(model, saved_labels: list[str], labels: list[str]) -> None:
    """A checkpoint's head trained for these very labels in another order (a Hub classifier's own order, where a
    run sorts its labels): its rows are put in the run's order. `from_pretrained` keeps them where they were
    while the config takes the run's names, so every label started with another label's row (a classifier at
    chance on its own labels). A head for other labels of the same number is kept, as transformers keeps it:
    said in a warning."""
    if saved_labels == labels or len(saved_labels) != len(labels):
        return
    if sorted(saved_labels) != sorted(labels):
        if not unnamed_labels(saved_labels):  # a trained head's names
            logger.warning("the checkpoint's classification head was trained for the labels %s; it is kept as the "
                           "start of a head for %s", saved_labels, labels)
        return
    layer = _output_layer(model)
    if layer is None:
        raise UsageError(f"{type(model).__name__}: the checkpoint's labels {saved_labels} are this data's in another "
                         "order, and no `classifier` layer was found to put its rows in this run's order")
    saved_row = {name: row for row, name in enumerate(saved_labels)}  # `list.index` a label: 5x10^7 steps at 10,000
    order = torch.tensor([saved_row[name] for name in labels], device=layer.weight.device)
    with torch.no_grad():
        layer.weight.copy_(layer.weight[order])
        if layer.bias is not None:
            layer.bias.copy_(layer.bias[order])
    logger.info("the checkpoint's head rows reordered from %s to this run's label order %s", saved_labels, labels)
