"""Whisper's encoder as an audio classifier sized to the clip, not to 30 seconds.

transformers' `WhisperForAudioClassification` (encoder -> projector -> mean over time -> classifier;
the decoder is neither loaded nor saved) refuses any input that is not exactly
`2 * config.max_source_positions` mel frames: 3,000 frames, i.e. 30 s, for every checkpoint. Padding a
1-s keyword to 30 s makes every step ~30x more work for nothing. `cut_to_window` keeps the first
`max_source_positions` rows of the (fixed, sinusoidal) positional table for a window of a whole number
of seconds and writes the new length into the native config field, so the saved model still loads in
plain transformers and `pipeline()`, and its feature extractor (`sized_feature_extractor`) pads and cuts
every input to exactly that window.

SpecAugment: `WhisperModel` masks the log-mel input when `config.apply_spec_augment` (its
`_mask_input_features`), but `WhisperForAudioClassification` calls the encoder directly and never does.
`add_spec_augment` applies that same masking, in training mode only, with a hook on the encoder.
"""

from __future__ import annotations

import math

from torch import nn
from transformers import WhisperFeatureExtractor, WhisperModel

from hfspeech.models.whisper.configuration_clip_pooling import MODEL_TYPE as CLIP_POOLING
from hfspeech.models.whisper.configuration_label_scoring import MODEL_TYPE as LABEL_SCORING

POSITIONS_PER_SECOND = 50  # 100 mel frames per second (hop 160 at 16 kHz), halved by the second convolution


def is_whisper(config) -> bool:
    """Whisper's encoder, as `WhisperForAudioClassification`, `WhisperClipPoolingForAudioClassification` or
    `WhisperForLabelScoring`."""
    return getattr(config, "model_type", None) in ("whisper", CLIP_POOLING, LABEL_SCORING)


def window_seconds_for(max_length_seconds: float | None, config) -> int:
    """The whole number of seconds a Whisper window takes: the crop rounded up, at most the checkpoint's 30 s.

    Whole seconds because `WhisperFeatureExtractor` stores its window as an integer `chunk_length`."""
    longest = config.max_source_positions // POSITIONS_PER_SECOND
    if not max_length_seconds:
        return longest
    return max(1, min(longest, math.ceil(max_length_seconds - 1e-9)))


def cut_to_window(model: nn.Module, seconds: int) -> None:
    """Keep the positional rows of a `seconds` window and record it as `config.max_source_positions`."""
    encoder = model.encoder
    positions = seconds * POSITIONS_PER_SECOND
    if positions > encoder.embed_positions.num_embeddings:
        raise ValueError(f"a {seconds}-s window needs {positions} positions; the checkpoint has "
                         f"{encoder.embed_positions.num_embeddings}")
    table = nn.Embedding(positions, encoder.embed_positions.embedding_dim)
    table.weight.data.copy_(encoder.embed_positions.weight.data[:positions])
    table.requires_grad_(False)
    table.to(encoder.embed_positions.weight.device)
    encoder.embed_positions = table
    encoder.max_source_positions = positions
    model.config.max_source_positions = positions


def sized_feature_extractor(extractor: WhisperFeatureExtractor, seconds: int) -> WhisperFeatureExtractor:
    """The same log-mel front end, padding and cutting to a `seconds` window instead of 30 s."""
    return WhisperFeatureExtractor(
        feature_size=extractor.feature_size, sampling_rate=extractor.sampling_rate, hop_length=extractor.hop_length,
        chunk_length=int(seconds), n_fft=extractor.n_fft, padding_value=extractor.padding_value,
        dither=getattr(extractor, "dither", 0.0), return_attention_mask=extractor.return_attention_mask,
    )


def _mask_features(encoder: nn.Module, args: tuple, kwargs: dict):
    if not encoder.training or not getattr(encoder.config, "apply_spec_augment", False):
        return None
    features = args[0] if args else kwargs["input_features"]
    masked = WhisperModel._mask_input_features(encoder, features.clone())  # uses only .config and .training
    return ((masked, *args[1:]), kwargs) if args else (args, {**kwargs, "input_features": masked})


def add_spec_augment(model: nn.Module) -> None:
    """SpecAugment (time and feature masks from `mask_time_prob`, `mask_feature_prob` ...) while training."""
    if not getattr(model, "_hfspeech_spec_augment", False):
        model.encoder.register_forward_pre_hook(_mask_features, with_kwargs=True)
        model._hfspeech_spec_augment = True


def prepare_whisper_classifier(model: nn.Module, extractor: WhisperFeatureExtractor, max_length_seconds: float | None,
                               window_seconds: int | None = None) -> tuple[WhisperFeatureExtractor, int]:
    """Cut a freshly loaded Whisper classifier and its feature extractor to a window; returns the extractor and
    the crop in whole seconds (the clip length inference cuts long audio into).

    The window is `window_seconds`, else the crop rounded up, or the window of a classifier hfspeech saved (its
    config records `max_length_seconds`) where that is longer: training on from a 5-s clip-pooling probe keeps
    its 5 s. A window longer than the crop only helps `WhisperClipPoolingForAudioClassification`, which leaves
    the silence after the clip out of its mean, and only that model gets the attention mask that says where
    the clip ends."""
    clip = window_seconds_for(max_length_seconds, model.config)
    pools_clip = model.config.model_type == CLIP_POOLING
    if window_seconds is None:
        saved = model.config.max_source_positions // POSITIONS_PER_SECOND
        window_seconds = max(clip, saved) if getattr(model.config, "max_length_seconds", None) else clip
    if window_seconds < clip:
        raise ValueError(f"a {window_seconds}-s window cannot hold {max_length_seconds}-s clips")
    cut_to_window(model, window_seconds)
    add_spec_augment(model)
    extractor = sized_feature_extractor(extractor, window_seconds)
    extractor.return_attention_mask = pools_clip
    return extractor, clip
