"""Waveform preprocessing in numpy alone: what ``Wav2Vec2FeatureExtractor`` (and the baselines' extractors,
its subclasses) do to a batch, without importing transformers.

ONNX inference (``hfspeech predict`` on an export) then needs neither torch nor transformers: the model
file holds the front end, and this holds the rest. ``WaveformPreprocessor`` gives the very arrays the
transformers extractor gives (tested bit for bit): clips padded with ``padding_value`` to the longest,
each normalised to zero mean and unit variance over its own samples (over the padded length when the
extractor returns no attention mask, as transformers does), an int32 attention mask when configured.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np

# Extractors that only pad and normalise waveforms: the preprocessor_config.json types this module stands in for.
WAVEFORM_EXTRACTORS = ("Wav2Vec2FeatureExtractor", "WaveformFeatureExtractor", "CNNAudioFeatureExtractor",
                       "LSTMAudioFeatureExtractor")
# Those that also reject empty and non-finite clips (hfspeech's WaveformFeatureExtractor subclasses).
CHECKED_EXTRACTORS = ("WaveformFeatureExtractor", "CNNAudioFeatureExtractor", "LSTMAudioFeatureExtractor")


def is_batched(raw_speech) -> bool:
    """Whether `raw_speech` is several clips (transformers' rule for audio feature extractors)."""
    return (isinstance(raw_speech, np.ndarray) and raw_speech.ndim > 1) or (
        isinstance(raw_speech, (list, tuple)) and len(raw_speech) > 0
        and isinstance(raw_speech[0], (np.ndarray, tuple, list)))


def check_waveforms(raw_speech) -> None:
    """Raise ``ValueError`` naming the first empty or non-finite clip of ``raw_speech``."""
    for index, clip in enumerate(raw_speech if is_batched(raw_speech) else [raw_speech]):
        samples = np.asarray(clip, dtype=np.float64)
        if samples.size == 0:
            raise ValueError(f"input {index} has zero length")
        if not np.isfinite(samples).all():
            raise ValueError(f"input {index} contains NaN or infinite samples")


class WaveformPreprocessor:
    """Pads a batch of mono clips to the longest and normalises each, like ``Wav2Vec2FeatureExtractor``."""

    model_input_names = ["input_values", "attention_mask"]

    def __init__(self, sampling_rate: int = 16000, padding_value: float = 0.0, do_normalize: bool = True,
                 return_attention_mask: bool = False, check_inputs: bool = False):
        self.sampling_rate = int(sampling_rate)
        self.padding_value = float(padding_value)
        self.do_normalize = bool(do_normalize)
        self.return_attention_mask = bool(return_attention_mask)
        self.check_inputs = check_inputs

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> Optional["WaveformPreprocessor"]:
        """The folder's preprocessor_config.json as a preprocessor; None when it names another kind of
        extractor (a spectrogram one such as AST's or Whisper's: transformers must run it)."""
        with open(os.path.join(folder, "preprocessor_config.json"), encoding="utf-8") as f:
            config = json.load(f)
        kind = config.get("feature_extractor_type")
        if kind not in WAVEFORM_EXTRACTORS or config.get("feature_size", 1) != 1:
            return None
        return cls(config.get("sampling_rate", 16000), config.get("padding_value", 0.0),
                   config.get("do_normalize", True), config.get("return_attention_mask", False),
                   check_inputs=kind in CHECKED_EXTRACTORS)

    def __call__(self, raw_speech, sampling_rate: Optional[int] = None, padding="longest",
                 return_tensors: Optional[str] = "np", **unused) -> dict[str, np.ndarray]:
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            raise ValueError(f"the model expects a sampling rate of {self.sampling_rate} Hz, got {sampling_rate} Hz")
        if self.check_inputs:
            check_waveforms(raw_speech)
        clips = [np.asarray(clip, dtype=np.float32).reshape(-1)
                 for clip in (raw_speech if is_batched(raw_speech) else [raw_speech])]
        lengths = np.array([len(clip) for clip in clips])
        values = np.full((len(clips), int(lengths.max())), self.padding_value, dtype=np.float32)
        for row, clip in zip(values, clips):
            row[: len(clip)] = clip
        if self.do_normalize:
            for row, length in zip(values, lengths):
                # As transformers: statistics of the valid samples with a mask, of the padded row without.
                valid = row[:length] if self.return_attention_mask else row
                row[:] = (row - valid.mean()) / np.sqrt(valid.var() + 1e-7)
                if self.return_attention_mask:
                    row[length:] = self.padding_value
        batch = {"input_values": values}
        if self.return_attention_mask:
            batch["attention_mask"] = (np.arange(values.shape[1])[None, :] < lengths[:, None]).astype(np.int32)
        return batch
