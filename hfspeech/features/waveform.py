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

# Extractors that also reject empty and non-finite clips (hfspeech's WaveformFeatureExtractor subclasses). Every
# baseline's must be here: another falls back to transformers' AutoFeatureExtractor, which does not know the
# baselines in a fresh process (`hfspeech predict` of any BC-ResNet export failed so).
CHECKED_EXTRACTORS = ("WaveformFeatureExtractor", "CNNAudioFeatureExtractor", "LSTMAudioFeatureExtractor",
                      "BCResNetAudioFeatureExtractor")
# Extractors that only pad and normalise waveforms: the preprocessor_config.json types this module stands in for.
WAVEFORM_EXTRACTORS = ("Wav2Vec2FeatureExtractor", *CHECKED_EXTRACTORS)


def is_batched(raw_speech) -> bool:
    """Whether `raw_speech` is several clips (transformers' rule for audio feature extractors, plus a list of
    torch tensors, which transformers took for one clip: clips of different lengths failed in numpy)."""
    return (isinstance(raw_speech, np.ndarray) and raw_speech.ndim > 1) or (
        isinstance(raw_speech, (list, tuple)) and len(raw_speech) > 0
        and (isinstance(raw_speech[0], (np.ndarray, tuple, list)) or getattr(raw_speech[0], "ndim", 0) > 0))


# Integer PCM -> float in [-1, 1), as soundfile and ffmpeg decode it: (offset, full scale) per dtype;
# 8-bit WAV is unsigned, centred on 128.
PCM_SCALES = {np.dtype(np.int8): (0, 128), np.dtype(np.int16): (0, 32768), np.dtype(np.int32): (0, 2**31),
              np.dtype(np.uint8): (128, 128)}


def float_samples(samples) -> np.ndarray:
    """Samples as float32 (shape kept), integer PCM divided by its full scale.

    Why: a file is decoded to [-1, 1], so an int16 array (scipy.io.wavfile, soundfile with dtype="int16")
    taken as float would be 32768 times louder than the same file: Whisper's log-mel and the energy gate of
    streaming read levels, and a waveform extractor left it float64, which the model refused with a torch
    dtype error. Integer types without a PCM full scale (int64, e.g. a list of Python ints) and non-numbers
    are a ValueError, not a guess.
    """
    samples = np.asarray(samples)
    if samples.dtype.kind == "f":
        return samples.astype(np.float32, copy=False)
    if samples.dtype in PCM_SCALES:
        offset, scale = PCM_SCALES[samples.dtype]
        return ((samples.astype(np.float32) - offset) / scale).astype(np.float32)
    if samples.dtype.kind in "iu":
        raise ValueError(f"integer samples of dtype {samples.dtype} have no PCM full scale: give float samples "
                         "in [-1, 1] or int16 / int32 PCM")
    raise ValueError(f"audio samples must be numbers, got dtype {samples.dtype}")


def float_clips(raw_speech):
    """`float_samples` of one clip or of each clip of a batch (a 2-D array or a list of clips)."""
    if is_batched(raw_speech) and not isinstance(raw_speech, np.ndarray):
        return [float_samples(clip) for clip in raw_speech]
    return float_samples(raw_speech)


MAX_CHANNELS = 8  # a 2-D array [n, c] with n > c <= this is one clip of c channels as soundfile reads it

# Samples up to 2**24 times full scale pass: integer PCM written unscaled as float (+-32768, +-8388608) is a gain
# that normalisation removes. Beyond it squares overflow float32 (from ~1.8e19) in the variance and log-mel power:
# NaN scores, or the scores of silence. `data.samples` refuses such files with the same limit.
MAX_SAMPLE_MAGNITUDE = float(2**24)
NON_FINITE = "audio contains NaN or infinite samples"
# An empty clip, as the extractors, decoded files and arrays say it; the API says it too of an array resampled to
# nothing (5 samples at 384 kHz are 0.21 of one at 16 kHz), where the count is not at hand (`no_samples_problem`).
ZERO_LENGTH = "audio has zero length (no samples), or too few to make one sample at the model's sampling rate"


def no_samples_problem(samples: int, rate: int, model_rate: int) -> str:
    """Why a clip of `samples` at `rate` Hz is empty at the model's `model_rate`: none in it (`ZERO_LENGTH`), or too
    few to make one sample there (soxr rounds under half a sample to none), said with the numbers. Such a file was
    scored on nothing: `predict` printed every label at 0.000 and `evaluate` counted it as its first label."""
    if samples <= 0 or samples * model_rate >= rate:  # none, or a count that should have made a sample: no numbers
        return ZERO_LENGTH
    return (f"{samples} sample{'s' * (samples != 1)} at {rate} Hz, less than one sample at the model's {model_rate} "
            "Hz (zero length once resampled): too short to use")


def level_problem(samples) -> Optional[str]:
    """What makes samples unusable whatever their source -- NaN/inf, or beyond `MAX_SAMPLE_MAGNITUDE` -- or None.
    The one wording of the rule: the extractors (`check_waveforms`) and decoded files and arrays
    (`data.samples.sample_problem`) both say it, and said it in two ways."""
    samples = np.asarray(samples)
    if not samples.size:
        return peak_problem(0.0)
    low, high = float(samples.min()), float(samples.max())  # NaN and inf carry through: no copy of an hour's clip
    if not (np.isfinite(low) and np.isfinite(high)):
        return NON_FINITE
    return peak_problem(max(high, -low))


def peak_problem(peak: float) -> Optional[str]:
    """The level rule for a peak measured elsewhere (a file read block by block), or None within it."""
    if peak > MAX_SAMPLE_MAGNITUDE:
        return (f"samples reach {peak:.3g}, over {MAX_SAMPLE_MAGNITUDE:.0f} times full scale (1.0): not audio "
                "levels (a corrupt float file?); scale the samples to [-1, 1]")
    return None


def check_waveforms(raw_speech) -> None:
    """Raise ``ValueError`` naming the first empty, non-finite or far too loud (`MAX_SAMPLE_MAGNITUDE`) clip of
    ``raw_speech``, or for one multi-channel clip ``[frames, channels]``, which the batch rule would take for
    ``frames`` clips of ``channels`` samples."""
    shape = np.shape(raw_speech) if isinstance(raw_speech, np.ndarray) else ()
    if len(shape) == 2 and shape[0] > shape[1] and shape[1] <= MAX_CHANNELS:
        raise ValueError(f"input of shape {shape} would be {shape[0]} clips of {shape[1]} samples: for one clip of "
                         f"{shape[1]} channels (frames, channels) mix it down first, e.g. samples.mean(axis=1)")
    for index, clip in enumerate(raw_speech if is_batched(raw_speech) else [raw_speech]):
        samples = np.asarray(clip, dtype=np.float64)
        if samples.size == 0:
            raise ValueError(f"input {index}: {ZERO_LENGTH}")
        if problem := level_problem(samples):
            raise ValueError(f"input {index}: {problem}")


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
                 return_tensors: Optional[str] = "np", return_attention_mask: Optional[bool] = None,
                 **unused) -> dict[str, np.ndarray]:
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            raise ValueError(f"the model expects a sampling rate of {self.sampling_rate} Hz, got {sampling_rate} Hz")
        # It pads to the longest clip only; these asked for arrays of another shape and were silently ignored.
        asked = {"padding": padding} if padding not in ("longest", True) else {}
        asked.update({k: v for k, v in unused.items() if k in ("max_length", "truncation", "pad_to_multiple_of") and v})
        if asked:
            raise ValueError(f"WaveformPreprocessor pads to the longest clip only, got {asked}: use the model folder's "
                             "transformers feature extractor (AutoFeatureExtractor) for other padding")
        with_mask = self.return_attention_mask if return_attention_mask is None else bool(return_attention_mask)
        raw_speech = float_clips(raw_speech)
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
                valid = row[:length] if with_mask else row
                row[:] = (row - valid.mean()) / np.sqrt(valid.var() + 1e-7)
                if with_mask:
                    row[length:] = self.padding_value
        batch = {"input_values": values}
        if with_mask:
            batch["attention_mask"] = (np.arange(values.shape[1])[None, :] < lengths[:, None]).astype(np.int32)
        return batch
