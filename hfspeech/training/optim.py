"""Freezing and per-parameter learning rates for fine-tuning pretrained speech encoders.

Fine-tuning a self-supervised encoder (Wav2Vec2, XLS-R, HuBERT, WavLM) on a small labelled set works
best when the parts that already know speech move least: the convolutional feature encoder is
frozen, lower transformer layers learn slower than upper ones (layer-wise learning-rate decay), and
the new head learns fastest. All of it works on any model by parameter names, through the
`base_model_prefix` transformers gives every `PreTrainedModel` ("wav2vec2", "hubert", "cnn", ...), or
Whisper's "encoder" (`hfspeech.models.frozen.base_module_name`).
"""

from __future__ import annotations

import re
from typing import Optional

from torch import nn

from hfspeech.errors import UsageError
from hfspeech.models.frozen import base_module_name

# The base's own numbered layers, right under it or under its encoder(s): `encoder.layers.N` (wav2vec2),
# `encoder.layer.N` (AST), `encoder.encoder.layer.N` (SEW-D), Whisper's `layers.N` (its base is the encoder), the
# baselines' `layers.N` (LSTM), `blocks.N` (CNN), `stages.N` (BC-ResNet: by stage). Not a numbered stack inside one
# of the encoder's modules: Data2VecAudio's positional convolutions `encoder.pos_conv_embed.layers.N` run below the
# first layer.
LAYER_PATH = r"(?:encoder\.)*(?:layers?|blocks|stages)\.(\d+)\."
DECODER_LAYER = r"decoder\.layers\.(\d+)\."  # a seq2seq base's (Whisper's label scorer), on top of its encoder's
# Modules that apply their `layer_norm` / `layernorm` child to the last layer's output (transformers' classes):
# Whisper's encoder, AST's model, the Conformer, and the pre-norm ("stable layer norm") encoders of Wav2Vec2,
# HuBERT, WavLM and UniSpeech (XLS-R, wav2vec2-large-lv60). The post-norm ones (wav2vec2-base, Data2Vec, SEW)
# apply theirs before the first layer.
NORM_AFTER_LAYERS = ("WhisperEncoder", "ASTModel", "Wav2Vec2ConformerEncoder")
NORM_AFTER_LAYERS_SUFFIX = "EncoderStableLayerNorm"
# Modules that run on the last layer's output: SEW's and SEW-D's upsampling back to the frame rate.
RUN_AFTER_LAYERS = ("SEWUpsampling", "SEWDUpsampling")


def freeze(model: nn.Module, feature_encoder: bool = False, base_model: bool = False) -> None:
    """Stop gradients to the feature encoder (where the model has one) or to the whole base model."""
    if feature_encoder and hasattr(model, "freeze_feature_encoder"):
        model.freeze_feature_encoder()
    if base_model:
        for parameter in model.get_submodule(base_named(model, "--freeze_base_model")).parameters():
            parameter.requires_grad = False


def is_head_parameter(name: str, base: str) -> bool:
    """Everything outside the base model `base` (projector, classifier, layer weights) is the head."""
    return not name.startswith(base + ".")


def base_named(model: nn.Module, flags: str) -> str:
    """The base module's path (`models.frozen.base_module_name`; a wrapper that runs a model's head alone names it
    itself: `base_parameter_prefix`, `training.feature_cache.CachedHeadModel`). A model without one is refused for
    `flags`, where it used to mean "every parameter is head": the whole encoder trained at the head's rate (SEW-D)."""
    try:
        return getattr(model, "base_parameter_prefix", None) or base_module_name(model)
    except UsageError as error:
        raise UsageError(f"{flags}: {error}; leave the flag out") from None


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
    positional conv) at `lr * decay**L`; the head learns at `head_learning_rate` (default `lr`). The norm
    an encoder applies after its last layer (`after_last_layer`) learns with the top layer, as in ELECTRA's and
    BEiT's layer-wise decay: it sits on top of it, not with the embeddings; so does SEW's upsampling.
    """
    flags = " / ".join(flag for flag, value in (("--head_learning_rate", head_learning_rate),
                                                 ("--layerwise_lr_decay", layerwise_lr_decay)) if value is not None)
    base = base_named(model, flags or "parameter groups")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    depth, num_layers = layer_depths([n for n, _ in named], base, tuple(after_last_layer(model)))
    if layerwise_lr_decay is not None and not num_layers:  # every parameter would learn at `learning_rate`
        raise UsageError(f"--layerwise_lr_decay: {type(model).__name__} has no numbered layers (layers.N, layer.N, "
                         "blocks.N, stages.N) to decay over; leave the flag out")

    def rate(name: str) -> float:
        if is_head_parameter(name, base):
            return head_learning_rate if head_learning_rate is not None else learning_rate
        if layerwise_lr_decay is None:
            return learning_rate
        return learning_rate * layerwise_lr_decay ** (num_layers - depth(name))

    groups: dict[tuple[float, float], list] = {}
    for name, parameter in named:
        decay = weight_decay if name in decay_parameter_names else 0.0
        groups.setdefault((rate(name), decay), []).append(parameter)
    return [{"params": params, "lr": lr, "weight_decay": decay} for (lr, decay), params in groups.items()]


def layer_depths(names: list[str], base: str, on_top: tuple) -> tuple:
    """(the depth of a parameter's name, L): the base's numbered layers 1..E (`LAYER_PATH`), a seq2seq base's decoder
    layers E+1..E+D on top of them (Whisper's label scorer: its decoder runs on the encoder's output; it was counted
    as the encoder, decoder layer i beside encoder layer i), what runs after the encoder's last layer (`on_top`) at
    E, the rest (feature encoder, embeddings, positional convs) below the first layer, 0."""
    encoder = re.compile(rf"^{re.escape(base)}\.{LAYER_PATH}")
    decoder = re.compile(rf"^{re.escape(base)}\.{DECODER_LAYER}")
    below = max((int(m.group(1)) + 1 for name in names if (m := encoder.match(name))), default=0)
    above = max((int(m.group(1)) + 1 for name in names if (m := decoder.match(name))), default=0)

    def depth(name: str) -> int:
        if match := encoder.match(name):
            return int(match.group(1)) + 1
        if match := decoder.match(name):
            return below + int(match.group(1)) + 1
        if above and name.startswith(f"{base}.decoder.layer_norm."):  # after the decoder's last layer, as on_top
            return below + above
        return below if name.startswith(on_top) else 0

    return depth, below + above


def after_last_layer(model: nn.Module) -> list[str]:
    """Name prefixes ("wav2vec2.encoder.layer_norm.") of what runs on the last layer's output: the norms of
    `NORM_AFTER_LAYERS` and the modules of `RUN_AFTER_LAYERS`; a model without them, or one unknown here, gives none."""
    found = []
    for path, module in model.named_modules():
        kind = type(module).__name__
        if kind in RUN_AFTER_LAYERS:
            found.append(f"{path}.")
        if kind in NORM_AFTER_LAYERS or kind.endswith(NORM_AFTER_LAYERS_SUFFIX):
            found += [f"{path}.{child}." if path else f"{child}." for child in ("layer_norm", "layernorm")
                      if isinstance(getattr(module, child, None), nn.LayerNorm)]
    return found
