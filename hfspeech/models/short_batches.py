"""Batches too short for a convolutional feature encoder (Wav2Vec2, HuBERT, WavLM), padded instead of a crash.

Two limits make transformers raise in the middle of a run: a clip shorter than one frame of the encoder's
receptive field (400 samples, 25 ms, for wav2vec2-base: "Kernel size can't be greater than actual input size"),
and, in training with SpecAugment (`mask_time_prob` > 0, 0.05 in wav2vec2-base's config), a batch shorter than
`mask_time_length` frames (10: 0.2 s; "`mask_length` has to be smaller than `sequence_length`"), which a batch
of FSDD's shortest digits (0.14 s) is. `predict` already hears a short clip with silence after it
(`inputs.min_samples`); `pad_short_batches` gives training and evaluation the same rule: clips shorter than one
frame count up to it, and a batch shorter than SpecAugment's span is padded beyond the clips (masked, where the
model takes a mask). A forward pre-hook on the model built for the run; what is saved is the plain model.
"""

from __future__ import annotations

from torch import nn
from torch.nn import functional

from hfspeech.models.inputs import min_samples


def shortest_batch(config, training: bool) -> int:
    """Samples a batch needs: one encoder frame, or SpecAugment's time span while training with it."""
    masking = training and getattr(config, "apply_spec_augment", False) and getattr(config, "mask_time_prob", 0) > 0
    return min_samples(config, max(1, config.mask_time_length) if masking else 1)


def _pad_short_batch(model: nn.Module, args: tuple, kwargs: dict):
    values = args[0] if args else kwargs.get("input_values")
    mask = kwargs.get("attention_mask")
    if values is None or values.dim() != 2 or (len(args) > 1 and mask is None):
        return None
    one_frame = min_samples(model.config)
    missing = shortest_batch(model.config, model.training) - values.shape[-1]
    short_clip = mask is not None and bool((mask.sum(-1) < one_frame).any())
    if missing <= 0 and not short_clip:
        return None
    values = functional.pad(values, (0, max(0, missing)))
    if mask is not None:  # the padding masked, except the silence that makes a short clip one frame long
        mask = functional.pad(mask, (0, max(0, missing)))  # a new tensor even when nothing is added: set in place
        mask[:, :one_frame] = 1
        kwargs = {**kwargs, "attention_mask": mask}
    return ((values, *args[1:]), kwargs) if args else (args, {**kwargs, "input_values": values})


def pad_short_batches(model: nn.Module) -> None:
    """Pad too-short batches on their way into `model` (a no-op for models without a convolutional encoder)."""
    if getattr(model.config, "conv_kernel", None) and not getattr(model, "_hfspeech_pads_short_batches", False):
        model.register_forward_pre_hook(_pad_short_batch, with_kwargs=True)
        model._hfspeech_pads_short_batches = True
