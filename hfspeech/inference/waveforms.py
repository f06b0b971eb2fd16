"""Audio held in memory (a numpy array, a list, a torch tensor), made into what the model takes -- mono
float32 at its sampling rate -- or refused in one line that names the problem.

A file goes through `decode_audio`, which scales, downmixes, resamples and checks it; an array from a notebook
or a service skipped all of that, so an int16 array was classified as if 32768 times louder, a `[n, 2]` stereo
array as one interleaved channel at twice its length, audio at 44.1 kHz as if at the model's 16 kHz, and an
empty or NaN array gave scores. `mono_samples` and `waveform_at_rate` apply the file path's rules instead:
integer PCM scaled to [-1, 1] (`features.waveform.float_samples`), `[n, channels]` downmixed as a file's
channels (`downmix_to_mono`), other rates resampled with soxr (the filter files are resampled with), and
everything else a `UsageError`.
"""

from __future__ import annotations

import numbers
import os

import numpy as np

from hfspeech.data.samples import cancelled_mix_problem, downmix_to_mono, rate_problem, sample_problem
from hfspeech.errors import UsageError
from hfspeech.features.waveform import ZERO_LENGTH, float_samples, no_samples_problem

# More channels than this in a 2-D array is taken for a channels-first array ([channels, n], as torchaudio and
# librosa give) or a batch of clips, and refused: averaging thousands of "channels" into a few samples would
# give scores without a word. 64 is above any recording layout (22.2 surround is 24 channels).
MAX_CHANNELS = 64


def mono_samples(samples, name: str = "waveform") -> np.ndarray:
    """`[n]` or `[n, channels]` samples (array, list, tensor; float, or integer PCM) -> finite mono float32."""
    if isinstance(samples, (str, os.PathLike)):
        raise UsageError(f"{name}: got a path ({str(samples)!r}), not samples: classify a file with "
                         "classify_file / score_file")
    if isinstance(samples, (bytes, bytearray, memoryview)):
        raise UsageError(f"{name}: got bytes (an encoded file?), not samples: decode them first with "
                         "hfspeech.data.audio.decode_audio({'bytes': data}, classifier.sampling_rate)")
    if callable(getattr(samples, "detach", None)):  # a torch tensor, on any device, with or without grad
        samples = samples.detach().cpu().numpy()
    try:
        samples = float_samples(samples)
    except ValueError as error:  # a ragged nested list, a dtype without a full scale, strings ...
        if isinstance(samples, (list, tuple)) and np.ndim(samples[0]) > 0:
            error = f"got a list of {len(samples)} clips of different lengths; pass one clip per call"
        raise UsageError(f"{name}: {error}") from None
    if samples.ndim == 2 and samples.shape[1] > MAX_CHANNELS:
        raise UsageError(f"{name}: shape {samples.shape} is not [n] or [n, channels] (at most {MAX_CHANNELS}): "
                         "transpose a channels-first array (waveform.T), classify a batch one clip at a time")
    if samples.ndim not in (1, 2):
        raise UsageError(f"{name}: audio samples must be [n] or [n, channels], got shape {samples.shape}")
    mono = downmix_to_mono(samples)
    # NaN/inf, levels whose squares overflow the extractors' float32, channels that cancel out: as in a file
    if problem := sample_problem(mono) or cancelled_mix_problem(samples, mono):
        raise UsageError(f"{name}: {problem}")
    return mono


def clip_list(waveforms) -> list:
    """The clips of a batch call (`AudioClassifier.logits` / `predict_proba`): a list of clips or a 2-D
    `[clips, n]` array. One clip given alone was iterated sample by sample and refused as "waveform 0 ... got
    shape ()", which named neither the mistake nor the way out."""
    if isinstance(waveforms, (str, os.PathLike)):
        raise UsageError(f"got a path ({str(waveforms)!r}), not clips: classify a file with classify_file / score_file")
    clips = list(waveforms)
    if clips and np.ndim(clips[0]) == 0:
        raise UsageError(f"expected a list of clips, got one clip ({type(waveforms).__name__} of {len(clips)} "
                         "samples): pass [waveform], or use score_waveform / classify_waveform")
    return clips


def check_count(name: str, value, unit: str) -> int:
    """`value` as a whole number of `unit`, at least 1, or a `UsageError` naming `name`: `top_k`, and
    `AudioClassifier`'s `batch_size`, where 0 failed in `range()` and -1 ran no batch and gave every clip
    equal scores."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise UsageError(f"{name} must be a whole number of {unit}, at least 1, got {value!r}")
    return int(value)


def check_sampling_rate(sampling_rate, name: str = "sampling_rate") -> int:
    """A sampling rate as a positive int, or a `UsageError` (0, negative, fractional, not a number, or below the
    1000 Hz a file's rate must reach: `samples.rate_problem`; an array "at 16 Hz" was resampled 1000-fold)."""
    if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, numbers.Real) \
            or sampling_rate != int(sampling_rate) or sampling_rate <= 0:
        raise UsageError(f"{name} must be a positive whole number of samples per second, got {sampling_rate!r}")
    if problem := rate_problem(int(sampling_rate), given=True):  # the floor a file's rate is held to
        raise UsageError(f"{name}: {problem}")
    return int(sampling_rate)


def waveform_at_rate(samples, sampling_rate, model_rate: int, name: str = "waveform") -> np.ndarray:
    """`mono_samples` of a whole clip, not empty, resampled from `sampling_rate` (None: already at
    `model_rate`) to `model_rate` with soxr, as `decode_audio` resamples a file."""
    samples = mono_samples(samples, name)
    if samples.size == 0:
        raise UsageError(f"{name}: {ZERO_LENGTH}")
    rate = model_rate if sampling_rate is None else check_sampling_rate(sampling_rate)
    if rate == model_rate:
        return samples
    import soxr

    resampled = soxr.resample(samples, rate, model_rate).astype(np.float32, copy=False)
    if resampled.size == 0:  # 5 samples at 384 kHz: under one at 16 kHz (the bare ZERO_LENGTH gave no numbers)
        raise UsageError(f"{name}: {no_samples_problem(samples.size, rate, model_rate)}")
    return resampled
