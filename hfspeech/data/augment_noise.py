"""Background noise for `data.augment`: audiomentations' ``AddBackgroundNoise`` with each noise file decoded once
per process. ``AddBackgroundNoise`` reads its noise file from disk on every call (~6 ms, more than the rest of the
augmentation chain together); this keeps the decoded files in memory and cuts the same segment from them.
"""

from __future__ import annotations

from typing import Optional

import librosa
import numpy as np
import soundfile as sf
from audiomentations import AddBackgroundNoise
from audiomentations.core.audio_loading_utils import load_sound_file
from audiomentations.core.utils import calculate_desired_noise_rms, calculate_rms

NOISE_CACHE_MB = 256  # decoded noise kept in memory per process; files beyond it are read on every call


class CachedBackgroundNoise(AddBackgroundNoise):
    """``AddBackgroundNoise`` (relative SNR) that decodes each noise file once per process, not once per call.

    The segment is cut as ``librosa.load(offset, duration)`` cuts it from the file read by soundfile,
    then resampled as audiomentations does, so the output equals ``AddBackgroundNoise``'s for the
    same random state. Files past ``cache_mb`` of decoded audio, or that soundfile cannot read, are
    loaded from disk every time, as before. Each DataLoader worker fills its own cache.
    """

    def __init__(self, sounds_path, min_snr_db: float, max_snr_db: float, p: float = 0.5,
                 cache_mb: float = NOISE_CACHE_MB):
        super().__init__(sounds_path, min_snr_db=min_snr_db, max_snr_db=max_snr_db, p=p)
        self.cache_bytes = int(cache_mb * 1e6)
        self._cache: dict[str, Optional[tuple[np.ndarray, int]]] = {}  # path -> (samples, rate); None: not cached
        self._cached_bytes = 0

    def _decoded(self, path: str) -> Optional[tuple[np.ndarray, int]]:
        if path not in self._cache:
            entry = None
            try:
                with sf.SoundFile(path) as file:
                    if self._cached_bytes + file.frames * file.channels * 4 <= self.cache_bytes:
                        entry = (file.read(dtype="float32", always_2d=False).T, file.samplerate)
            except (sf.LibsndfileError, RuntimeError):  # soundfile cannot read it: librosa's fallback will
                entry = None
            if entry is not None:
                self._cached_bytes += entry[0].nbytes
            self._cache[path] = entry
        return self._cache[path]

    def _noise_segment(self, sample_rate: int) -> np.ndarray:
        path, offset, duration = (self.parameters[k] for k in ("noise_file_path", "offset", "duration"))
        decoded = self._decoded(path)
        if decoded is None:
            return load_sound_file(path, sample_rate, offset=offset, duration=duration)[0]
        samples, native_rate = decoded
        start = int(offset * native_rate) if offset else 0
        segment = librosa.to_mono(samples[..., start : start + int(duration * native_rate)])
        if native_rate != sample_rate:
            segment = librosa.resample(segment, orig_sr=native_rate, target_sr=sample_rate, res_type="soxr_hq")
        return segment

    def apply(self, samples, sample_rate):
        noise = self._noise_segment(sample_rate)
        noise_rms = calculate_rms(noise)
        if noise_rms < 1e-9:
            return samples  # a silent noise file: nothing to add (audiomentations warns and does the same)
        noise = noise * (calculate_desired_noise_rms(calculate_rms(samples), self.parameters["snr_db"]) / noise_rms)
        if len(noise) < len(samples):
            noise = np.tile(noise, -(-len(samples) // len(noise)))
        return samples + noise[: len(samples)]
