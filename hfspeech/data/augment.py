"""On-the-fly waveform augmentation for training, reproducible from a seed.

Small transforms (audiomentations' ``AddGaussianSNR``, ``AddBackgroundNoise`` and ``Gain``; the timing ones
of ``data.augment_timing``; the speaker ones of ``data.augment_speaker``) are composed by one
``WaveformAugmenter``, configured by a flat ``AugmentationConfig`` (``data.augment_flags``, with the flags' checks:
a run that does not augment never imports this module). The augmenter maps one 1-D float32
waveform to another; it never changes the batch, so labels need no bookkeeping elsewhere.

audiomentations draws its randomness from the global ``random`` and ``np.random``. To make a run repeatable,
each call seeds both from the augmenter's own generator (mixed with the DataLoader worker's seed and the
process rank, `worker_entropy`) and puts the previous global states back afterwards. `set_epoch` starts an epoch's
draws from (seed, epoch), so a resumed run draws as the uninterrupted one did (`training.epoch_seeds`).

audiomentations' ``AddBackgroundNoise`` reads its noise file from disk on every call (~6 ms, more
than the rest of the chain together); ``CachedBackgroundNoise`` (``data.augment_noise``) keeps each decoded
noise file in memory instead (once per process, up to a size limit) and cuts the same segment from it, so the
output stays the same sample for sample.
"""

from __future__ import annotations

import random
from typing import Optional

import numpy as np
from audiomentations import AddGaussianSNR, Compose, Gain, OneOf

from hfspeech.data.augment_flags import DEFAULT_BACKGROUND_SNR_DB, AugmentationConfig, noise_files_of_flag
from hfspeech.data.augment_noise import NOISE_CACHE_MB, CachedBackgroundNoise  # noqa: F401  (also imported from here)
from hfspeech.data.augment_speaker import speaker_transforms
from hfspeech.data.augment_timing import ClipShift, EndpointTrim, SpeedPerturbation
from hfspeech.data.worker_seeds import worker_entropy
from hfspeech.errors import UsageError


class WaveformAugmenter:
    """Applies an ``AugmentationConfig`` to mono float32 waveforms, reproducibly from ``seed``.

    Speed goes first (it changes the length), then shift, gain and finally noise, so that the SNR
    is measured against the signal as it will be heard.
    """

    def __init__(self, config: AugmentationConfig, sampling_rate: int, seed: int = 0):
        if int(sampling_rate) <= 0:
            raise UsageError(f"sampling_rate must be positive, got {sampling_rate!r}")
        self.config = config
        self.sampling_rate = int(sampling_rate)
        self.seed = int(seed)
        self._rng = np.random.default_rng(seed)

        transforms = []
        if config.speed_factors is not None:
            transforms.append(SpeedPerturbation(config.speed_factors, p=config.speed_prob))
        if config.endpoint_trim_db is not None:
            transforms.append(EndpointTrim(config.endpoint_trim_db, p=0.5))
        transforms += speaker_transforms(config.vtlp_warp, config.pitch_semitones, config.reverb_prob)
        if config.time_shift_seconds is not None:
            shift = config.time_shift_seconds
            transforms.append(ClipShift(min_shift=-shift, max_shift=shift, shift_unit="seconds",
                                        rollover=False, p=1.0))
        if config.gain_db is not None:
            transforms.append(Gain(min_gain_db=-config.gain_db, max_gain_db=config.gain_db, p=1.0))
        noises = []
        if config.noise_snr_db is not None:
            low, high = config.noise_snr_db
            noises.append(AddGaussianSNR(min_snr_db=low, max_snr_db=high, p=1.0))
        if config.noise_dir is not None:
            low, high = config.noise_snr_db or DEFAULT_BACKGROUND_SNR_DB
            noises.append(CachedBackgroundNoise(noise_files_of_flag(config.noise_dir), min_snr_db=low,
                                                max_snr_db=high, p=1.0))
        if noises:
            transforms.append(OneOf(noises, p=config.noise_prob))
        self.transform = Compose(transforms, p=config.p) if transforms else None

    def set_epoch(self, epoch: int) -> None:
        """Start this epoch's draws from (seed, epoch), not where the last epoch left off: a run resumed at this
        epoch then draws as the uninterrupted run did (`training.epoch_seeds`)."""
        self._rng = np.random.default_rng([self.seed, int(epoch)])

    def _call_seed(self) -> int:
        """Next seed of this augmenter, made distinct per DataLoader worker and per epoch.

        Each worker holds a copy of this object with the same generator state, so the copies are
        told apart by the worker's ``seed`` (torch's per-epoch base seed + worker id); that also
        keeps the epochs of non-persistent workers from replaying each other.
        """
        entropy = [int(self._rng.integers(2**63)), *worker_entropy()]
        return int(np.random.SeedSequence(entropy).generate_state(1)[0])

    def __call__(self, waveform: np.ndarray, seed: Optional[int] = None) -> np.ndarray:
        """`seed` (below 2**32): this clip's draws from it alone (`TrainTransform`'s per-clip seed); None: the
        augmenter's next seed (`_call_seed`)."""
        # Writable: clips read from Arrow are read-only views, and PitchShift's C++ stretcher refuses those.
        waveform = np.require(waveform, dtype=np.float32, requirements=["C", "W"])
        if waveform.ndim != 1:
            raise UsageError(f"expected a mono 1-D waveform, got shape {waveform.shape}")
        if self.transform is None or waveform.size == 0:  # nothing to do, or nothing to do it to
            return waveform
        seed = self._call_seed() if seed is None else int(seed)
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            random.seed(seed)
            np.random.seed(seed)
            out = self.transform(samples=waveform, sample_rate=self.sampling_rate)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        return np.asarray(out, dtype=np.float32)

    def __repr__(self) -> str:
        return f"WaveformAugmenter({self.config}, sampling_rate={self.sampling_rate})"
