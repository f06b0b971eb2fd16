"""Model inputs from waveforms: one rule for how a batch of clips is padded, shared by training and inference.

Most feature extractors pad to the longest clip of the batch (with an attention mask where the model takes
one). Whisper's encoder takes exactly its window: its extractor pads every clip with silence to the window
(`padding="max_length"`), so a clip gives the same features alone or in any batch. It returns a mask only for
`WhisperClipPoolingForAudioClassification` (`return_attention_mask` set), and then per mel frame only when asked
for in the call (else per sample: 160 times longer, and not what the ONNX graph takes).

A waveform extractor that normalises (`do_normalize`, zero mean and unit variance) but returns no mask (the
group-norm models: wav2vec2-base, hubert-base) would normalise each clip over its padded length, zeros included:
a short clip in a batch came out up to 1.6x louder than alone (FSDD, 0.3 s beside 0.75 s), and with other
values in training than in `predict`, which runs such models in batches of one length. Each clip is normalised
alone, then zero-padded, as transformers' `run_audio_classification.py` (which does not pad) and the docs of
`Wav2Vec2FeatureExtractor` ("simply padded with 0") have it.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Optional, Sequence

import numpy as np


def is_extractor_of(feature_extractor: Any, class_name: str) -> bool:
    """Whether the extractor is transformers' `class_name` (or a subclass), recognised by class name: importing
    transformers to check would cost ONNX inference, which runs without it, its whole start-up advantage."""
    return any(cls.__name__ == class_name for cls in type(feature_extractor).__mro__)


def has_fixed_window(feature_extractor: Any) -> bool:
    """Whisper's extractor: every clip padded (or cut) to its `n_samples`."""
    return is_extractor_of(feature_extractor, "WhisperFeatureExtractor")


def extract_features(feature_extractor: Any, waveforms: Sequence[np.ndarray], return_tensors: str = "pt"):
    """The model's inputs for a batch of mono waveforms at the extractor's sampling rate."""
    fixed_window = has_fixed_window(feature_extractor)
    if not fixed_window and normalises_over_padding(feature_extractor):
        alone = feature_extractor(list(waveforms), sampling_rate=feature_extractor.sampling_rate, padding=False)
        return feature_extractor.pad(alone, padding="longest", return_tensors=return_tensors)
    mask = {"return_attention_mask": True} if fixed_window and feature_extractor.return_attention_mask else {}
    return feature_extractor(list(waveforms), sampling_rate=feature_extractor.sampling_rate,
                             padding="max_length" if fixed_window else "longest", return_tensors=return_tensors,
                             **mask)


def normalises_over_padding(feature_extractor: Any) -> bool:
    """Whether a waveform extractor (`Wav2Vec2FeatureExtractor`, which HuBERT, WavLM and Data2VecAudio use too),
    padding a batch, would normalise each clip together with its padding: it normalises (`do_normalize`) and
    returns no attention mask, the one thing that confines the statistics to the clip. (AST's extractor
    normalises log-mel features by fixed constants: no padding reaches its statistics.)"""
    waveform = is_extractor_of(feature_extractor, "Wav2Vec2FeatureExtractor")
    return waveform and bool(feature_extractor.do_normalize) and not feature_extractor.return_attention_mask


# Encoders that read padded frames although their extractor returns an attention mask: Data2VecAudio's stack of
# positional convolutions (the padding is zeroed before the first, but its bias and norm make it nonzero for the next)
# and the Conformer's convolution module (a depthwise convolution over frames no mask zeroes). A clip beside a longer
# one in a padded batch scored 0.0011 off its score alone, its top label flipped (tiny models, session 33). SEW and
# SEW-D squeeze and upsample over frames with the padding (logits 2.1 and 1.3 off, with an extractor returning a mask).
READS_PADDED_FRAMES = ("data2vec-audio", "wav2vec2-conformer", "sew", "sew-d")


def pads_with_attention_mask(config: Any, feature_extractor: Any) -> bool:
    """Whether clips of different lengths can share a padded batch, the model ignoring the padding by its mask.

    A feature extractor that returns an attention mask (the baselines; Wav2Vec2/HuBERT/WavLM with a layer-norm
    feature encoder, e.g. wav2vec2-large, XLS-R) pads, and the model ignores the padding, unless it is one of
    `READS_PADDED_FRAMES`. One that returns no mask is a model that must NOT be given one: a group-norm feature
    encoder (`feat_extract_norm == "group"`, wav2vec2-base, hubert-base, SEW) normalises each channel over the whole
    time axis, padding included, so zero padding changes the logits (transformers' docs for Wav2Vec2: such models
    "should not be passed an attention_mask" and "yield slightly different results depending on whether
    input_values is padded or not"; huggingface/transformers#10117, #21534). All these are batched by equal length
    only (`batch_indices`), each clip exactly as it would run alone; windows of one file all have one length, so
    batching is kept where it matters. (AST's extractor pads every clip to its fixed input length and returns no
    mask: equal-length batching is harmless there. Whisper's pads every clip to its fixed window, so any clips can
    share a batch: `shares_padded_batches`.)"""
    return (bool(getattr(feature_extractor, "return_attention_mask", False))
            and getattr(config, "model_type", None) not in READS_PADDED_FRAMES
            and not normalises_over_time(config))


def normalises_over_time(config: Any) -> bool:
    """A group-norm feature encoder (`feat_extract_norm == "group"`) reads the padding whatever its extractor says:
    a user's or the Hub's `return_attention_mask: true` on a wav2vec2-base style model made a clip's top label
    depend on the other files of a `predict` (session 33). Its mask zeroes nothing before that norm."""
    return getattr(config, "feat_extract_norm", None) == "group"


def shares_padded_batches(config: Any, feature_extractor: Any) -> bool:
    """Whether clips of any lengths may run in one batch and each keep the logits it has alone: Whisper's and AST's
    extractors pad every clip to one input length (AST alone vs in a padded batch: 1.5e-8), masks do the rest."""
    pads_to_one_length = has_fixed_window(feature_extractor) or is_extractor_of(feature_extractor,
                                                                                 "ASTFeatureExtractor")
    return pads_to_one_length or pads_with_attention_mask(config, feature_extractor)


def batch_indices(lengths: Sequence[int], batch_size: int, mixed: bool) -> Iterator[list[int]]:
    """Indices of the clips that run together, at most `batch_size` a batch: consecutive ones where lengths may be
    `mixed` (`shares_padded_batches`), else clips of equal length only, in order of first appearance."""
    if mixed:
        for start in range(0, len(lengths), batch_size):
            yield list(range(start, min(start + batch_size, len(lengths))))
        return
    by_length: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        by_length.setdefault(int(length), []).append(index)
    for indices in by_length.values():
        for start in range(0, len(indices), batch_size):
            yield indices[start : start + batch_size]


def min_samples(config: Any, frames: int = 1) -> int:
    """The shortest waveform the model takes: `frames` frames of a convolutional feature encoder's receptive
    field (`conv_kernel`, `conv_stride`: 400 samples for one frame of wav2vec2-base, HuBERT, WavLM); 1 for the
    other models."""
    if not getattr(config, "conv_kernel", None):
        return 1
    length = frames
    for kernel, stride in reversed(list(zip(getattr(config, "conv_kernel", ()), getattr(config, "conv_stride", ())))):
        length = (length - 1) * stride + kernel
    return length


def padded_to(waveform: np.ndarray, length: int) -> np.ndarray:
    """`waveform`, followed by silence up to `length` samples if it is shorter."""
    return waveform if len(waveform) >= length else np.pad(waveform, (0, length - len(waveform)))


DEFAULT_WINDOW_SECONDS = 10.0  # for a model whose config and extractor both leave the clip length open
AST_FRAME_SECONDS, AST_FRAME_SHIFT_SECONDS = 0.025, 0.010  # ASTFeatureExtractor's Kaldi fbank (fixed in transformers)


def window_seconds_of(config: Any, feature_extractor: Any = None) -> float:
    """The clip length a model was trained on (`config.max_length_seconds`): inference cuts longer audio into
    windows of it, export calibrates and traces with it. A checkpoint made outside hfspeech records none: its
    extractor's fixed input length is the window (`extractor_window_seconds`), else `DEFAULT_WINDOW_SECONDS`."""
    recorded = getattr(config, "max_length_seconds", None)
    return float(recorded or extractor_window_seconds(feature_extractor) or DEFAULT_WINDOW_SECONDS)


def extractor_window_seconds(feature_extractor: Any) -> Optional[float]:
    """The input length an extractor pads or cuts every clip to, read from its own fields: Whisper's `n_samples`
    at its `sampling_rate` (30 s for OpenAI's checkpoints); for AST the longest clip whose log-mel frames (25 ms,
    every 10 ms) all fit in its `max_length` (1,024: 10.25 s, to 10 ms), the rest of a longer clip cut off without a
    word. With the 10-s default an outside Whisper scored a 12-s clip in 2 windows, which transformers' pipeline
    classifies whole (session 33). None for extractors that take any length."""
    if feature_extractor is None:
        return None
    if has_fixed_window(feature_extractor) and getattr(feature_extractor, "n_samples", None):
        return feature_extractor.n_samples / feature_extractor.sampling_rate
    ast = is_extractor_of(feature_extractor, "ASTFeatureExtractor")
    if ast and getattr(feature_extractor, "max_length", None):
        heard = (feature_extractor.max_length - 1) * AST_FRAME_SHIFT_SECONDS + AST_FRAME_SECONDS
        return math.floor(heard * 100 + 1e-6) / 100
    return None
