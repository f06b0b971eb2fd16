"""Freezing and per-parameter learning rates for fine-tuning pretrained speech encoders.

Fine-tuning a self-supervised encoder (Wav2Vec2, XLS-R, HuBERT, WavLM) on a small labelled set works
best when the parts that already know speech move least: the convolutional feature encoder is
frozen, lower transformer layers learn slower than upper ones (layer-wise learning-rate decay), and
the new head learns fastest. All of it works on any model by parameter names, through the
`base_model_prefix` transformers gives every `PreTrainedModel` ("wav2vec2", "hubert", "cnn", ...).
"""

from __future__ import annotations

import re
from typing import Optional

from torch import nn

from hfspeech.errors import UsageError

LAYER_INDEX = re.compile(r"\.(?:layers?|blocks)\.(\d+)\.")  # layers.N (wav2vec2), layer.N (AST)


def freeze(model: nn.Module, feature_encoder: bool = False, base_model: bool = False) -> None:
    """Stop gradients to the feature encoder (where the model has one) or to the whole base model."""
    if feature_encoder and hasattr(model, "freeze_feature_encoder"):
        model.freeze_feature_encoder()
    if base_model:
        base = getattr(model, getattr(model, "base_model_prefix", ""), None)
        if base is None:
            raise UsageError(f"{type(model).__name__} has no base model to freeze")
        for parameter in base.parameters():
            parameter.requires_grad = False


def is_head_parameter(model: nn.Module, name: str) -> bool:
    """Everything outside the base model (projector, classifier, layer weights) is the head."""
    prefix = getattr(model, "base_model_prefix", "")
    return not (prefix and name.startswith(prefix + "."))


def parameter_groups(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    decay_parameter_names: set[str],
    head_learning_rate: Optional[float] = None,
    layerwise_lr_decay: Optional[float] = None,
) -> list[dict]:
    """Optimizer groups of trainable parameters, each with its own learning rate and weight decay.

    Layer-wise decay: with L numbered layers (0 = lowest), layer i learns at `lr * decay**(L - 1 - i)`
    -- the top layer at `lr` -- and whatever sits below the first layer (feature encoder, projection,
    positional conv) at `lr * decay**L`; the head learns at `head_learning_rate` (default `lr`).
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    layers = [int(m.group(1)) for n, _ in named if not is_head_parameter(model, n) and (m := LAYER_INDEX.search(n))]
    num_layers = max(layers) + 1 if layers else 0

    def rate(name: str) -> float:
        if is_head_parameter(model, name):
            return head_learning_rate if head_learning_rate is not None else learning_rate
        if layerwise_lr_decay is None:
            return learning_rate
        match = LAYER_INDEX.search(name)
        depth = int(match.group(1)) + 1 if match else 0  # below the first layer -> 0
        return learning_rate * layerwise_lr_decay ** (num_layers - depth)

    groups: dict[tuple[float, float], list] = {}
    for name, parameter in named:
        decay = weight_decay if name in decay_parameter_names else 0.0
        groups.setdefault((rate(name), decay), []).append(parameter)
    return [{"params": params, "lr": lr, "weight_decay": decay} for (lr, decay), params in groups.items()]
