"""Augmentations that imitate other speakers and rooms: vocal tract length perturbation, pitch shift and
reverberation from generated room impulse responses.

With a handful of training speakers, a model learns their voices; a new voice differs mostly in formant
positions (vocal tract length), pitch and the room. These transforms move the training clips along those
axes. They are audiomentations transforms, so `data.augment.WaveformAugmenter` composes and seeds them with
the others.

* VTLP (Jaitly & Hinton 2013): the magnitude spectrum is warped along frequency by a factor alpha (0.9-1.1),
  piecewise-linearly so that the band edge stays put, and resynthesised with the clip's own phase from 32-ms
  frames (a duration, so 8 and 16 kHz clips are smeared alike); the duration is unchanged. Formants and pitch
  move together, as from a longer or shorter vocal tract.
* Pitch shift: audiomentations' ``PitchShift`` (resampling + time stretch; formants move with it).
* Reverberation: an impulse response of exponentially decaying noise with an RT60 drawn from 0.1-0.6 s and a
  direct-path impulse, convolved with the clip and scaled back to its RMS. Generated per call: no files.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from audiomentations import PitchShift
from audiomentations.core.transforms_interface import BaseWaveformTransform
from scipy.signal import fftconvolve, istft, stft

VTLP_BOUNDARY = 0.8  # share of the band warped linearly by alpha; above it the warp bends back to Nyquist
VTLP_FRAME_SECONDS = 0.032  # 512 samples at 16 kHz; a fixed 512 was 64 ms at 8 kHz and smeared onsets twice as far
DEFAULT_RT60 = (0.1, 0.6)


def warp_bins(num_bins: int, alpha: float) -> np.ndarray:
    """For each output bin, the (fractional) input bin it reads: f -> f / alpha below the boundary, then a line
    to the top bin, so the whole band maps onto itself."""
    top = num_bins - 1
    out = np.arange(num_bins, dtype=np.float64)
    knee = VTLP_BOUNDARY * top * min(alpha, 1.0)  # output bin where the linear part ends
    source = out / alpha
    upper = out > knee
    source[upper] = knee / alpha + (out[upper] - knee) * (top - knee / alpha) / max(top - knee, 1e-9)
    return np.clip(source, 0, top)


class VocalTractLengthPerturbation(BaseWaveformTransform):
    """Warp the spectrum by alpha drawn uniformly from ``(min_warp, max_warp)``; same length out."""

    supports_multichannel = False

    def __init__(self, min_warp: float = 0.9, max_warp: float = 1.1, p: float = 0.5):
        super().__init__(p)
        if not 0 < min_warp <= max_warp:
            raise ValueError(f"need 0 < min_warp <= max_warp, got {min_warp}, {max_warp}")
        self.min_warp, self.max_warp = min_warp, max_warp

    def randomize_parameters(self, samples, sample_rate):
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            self.parameters["alpha"] = float(np.random.uniform(self.min_warp, self.max_warp))

    def apply(self, samples, sample_rate):
        alpha = self.parameters["alpha"]
        frame = vtlp_frame(sample_rate)
        if len(samples) < frame or alpha == 1.0:
            return samples
        _, _, spectrum = stft(samples, nperseg=frame)
        _, out = istft(warp_spectrum(spectrum, alpha, frame), nperseg=frame)
        return out[: len(samples)].astype(np.float32)


def vtlp_frame(sample_rate: int) -> int:
    """The analysis frame in samples: ``VTLP_FRAME_SECONDS``, rounded to an even number (hop: half of it)."""
    return max(2, 2 * round(VTLP_FRAME_SECONDS * sample_rate / 2))


def warp_spectrum(spectrum: np.ndarray, alpha: float, frame: int) -> np.ndarray:
    """``[bins, frames]`` STFT of ``frame``-sample frames (hop of half a frame) warped along frequency,
    phase-vocoder style: each output bin takes the magnitude interpolated at its source position and the
    source's instantaneous frequency, scaled by the warp, accumulated frame by frame so the partials land where
    the warp puts them."""
    bins, frames = spectrum.shape
    hop = frame // 2
    source = warp_bins(bins, alpha)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, bins - 1)
    weight = (source - low)[:, None]
    magnitude = np.abs(spectrum)
    warped = (1 - weight) * magnitude[low] + weight * magnitude[high]
    nearest = np.rint(source).astype(int)
    bin_omega = 2 * np.pi * np.arange(bins) / frame  # radians per sample at each bin's centre
    phase = np.angle(spectrum)
    advance = np.diff(phase, axis=1, prepend=phase[:, :1]) - bin_omega[:, None] * hop
    advance = np.angle(np.exp(1j * advance))  # wrapped deviation from the bin's own frequency
    instantaneous = bin_omega[:, None] + advance / hop
    ratio = np.divide(np.arange(bins), source, out=np.ones(bins), where=source > 0)[:, None]
    out_phase = phase[nearest, :1] + np.cumsum(instantaneous[nearest] * ratio * hop, axis=1) - \
        instantaneous[nearest, :1] * ratio * hop
    return warped * np.exp(1j * out_phase)


def room_impulse_response(sample_rate: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Direct path, then exponentially decaying Gaussian noise falling 60 dB in ``rt60`` seconds."""
    length = max(1, int(rt60 * sample_rate))
    t = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * np.exp(-6.9078 * t / rt60)  # ln(1000) = 6.9078: -60 dB at rt60
    tail *= 0.3 / max(np.sqrt(np.sum(tail**2)), 1e-9)
    tail[0] = 1.0
    return tail


class GeneratedReverb(BaseWaveformTransform):
    """Convolve with a generated room impulse response; the clip keeps its length and RMS."""

    supports_multichannel = False

    def __init__(self, rt60: tuple[float, float] = DEFAULT_RT60, p: float = 0.5):
        super().__init__(p)
        self.rt60 = rt60

    def randomize_parameters(self, samples, sample_rate):
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            self.parameters["rt60"] = float(np.random.uniform(*self.rt60))
            self.parameters["seed"] = int(np.random.randint(2**31))

    def apply(self, samples, sample_rate):
        response = room_impulse_response(sample_rate, self.parameters["rt60"],
                                         np.random.default_rng(self.parameters["seed"]))
        out = fftconvolve(samples, response)[: len(samples)]
        rms_in, rms_out = np.sqrt(np.mean(samples**2)), np.sqrt(np.mean(out**2))
        return (out * (rms_in / rms_out if rms_out > 1e-9 else 1.0)).astype(np.float32)


def speaker_transforms(vtlp_warp: Optional[tuple[float, ...]], pitch_semitones: Optional[float],
                       reverb_prob: Optional[float], prob: float = 0.5) -> list[BaseWaveformTransform]:
    """The transforms switched on by the flags (VTLP and pitch with probability ``prob`` each)."""
    transforms: list[BaseWaveformTransform] = []
    if vtlp_warp is not None:
        transforms.append(VocalTractLengthPerturbation(vtlp_warp[0], vtlp_warp[-1], p=prob))
    if pitch_semitones:
        transforms.append(PitchShift(min_semitones=-pitch_semitones, max_semitones=pitch_semitones, p=prob))
    if reverb_prob:
        transforms.append(GeneratedReverb(p=reverb_prob))
    return transforms
