"""Augmentations that change a clip's timing or extent: speed perturbation, a shift, an eager endpointer.

audiomentations transforms, composed and seeded by ``data.augment.WaveformAugmenter`` with the others.
"""

from __future__ import annotations

import random

import numpy as np
import soxr
from audiomentations import Shift
from audiomentations.core.transforms_interface import BaseWaveformTransform

from hfspeech.data.audio import trim_silence


class SpeedPerturbation(BaseWaveformTransform):
    """Kaldi-style speed perturbation: resample so that tempo *and* pitch change together.

    A factor of 0.9 makes the clip 1/0.9 times longer and lower; audiomentations' ``TimeStretch``
    keeps the pitch, which is a different (and slower) augmentation.
    """

    def __init__(self, factors: tuple[float, ...] = (0.9, 1.0, 1.1), p: float = 0.5):
        super().__init__(p)
        self.factors = tuple(factors)

    def randomize_parameters(self, samples, sample_rate):
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            self.parameters["factor"] = random.choice(self.factors)

    def apply(self, samples, sample_rate):
        factor = self.parameters["factor"]
        if factor == 1.0:
            return samples
        # Resampled to sample_rate / factor, then played at sample_rate: factor times faster.
        out = soxr.resample(samples, sample_rate, sample_rate / factor).astype(np.float32)
        return out if out.size else samples  # a clip of one sample at a factor over 2: nothing left to play


class EndpointTrim(BaseWaveformTransform):
    """An eager endpointer: cut where the sound falls below a threshold drawn from ``min_top_db``-``max_top_db`` dB.

    The threshold is under the clip's peak; 40 dB only removes silence, 20 dB cuts into weak consonants. It
    imitates recordings whose endpointer cut into the word. FSDD's nicolas: his clips start and end 15-20 dB
    below their peak, against 27-50 dB for the other speakers, his "six" lasts 0.26 s (0.42-0.71 s for the
    others; a 20-dB cut of theirs: 0.12-0.25 s), and it is the digit the Whisper models miss on him
    (tiny.en LP-FT with this at 20 dB: his "six" errors 15 -> 2 and 23 -> 6 in two of three seeds).
    Randomness from the global ``np.random``, like audiomentations' own transforms, so ``WaveformAugmenter``
    seeds it.
    """

    supports_multichannel = False

    def __init__(self, min_top_db: float, max_top_db: float = 40.0, p: float = 0.5):
        super().__init__(p)
        self.min_top_db, self.max_top_db = min_top_db, max(max_top_db, min_top_db)

    def randomize_parameters(self, samples, sample_rate):
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            self.parameters["top_db"] = float(np.random.uniform(self.min_top_db, self.max_top_db))

    def apply(self, samples, sample_rate):
        return trim_silence(samples, top_db=self.parameters["top_db"])


class ClipShift(Shift):
    """audiomentations' ``Shift`` (in seconds, no rollover) with the shift kept shorter than the clip.

    ``Shift`` 0.43 fails on a clip shorter than the drawn shift ("operands could not be broadcast together",
    its fade-out slice runs past the start): a 0.1-s shift broke training on clips under ~0.1 s, such as a short
    word cut by ``EndpointTrim``. The shift is capped at the clip's length less the fade.
    """

    def apply(self, samples, sample_rate):
        fade = int(sample_rate * self.fade_duration) if self.fade else 0
        limit = (samples.shape[-1] - fade - 1) / sample_rate
        if limit <= 0:
            return samples
        self.parameters["shift_amount"] = float(np.clip(self.parameters["shift_amount"], -limit, limit))
        return super().apply(samples, sample_rate)
