"""The augmentation flags: `AugmentationConfig` and the checks made when the command line is read.

A module of its own, below `data.augment` (the augmenter): audiomentations, scipy.signal and librosa (about 1 s of
CPU) are imported only by a run that augments, or when a `--noise_dir` is checked; every `hfspeech train` imported
them to check its flags, and every run imported them to build an augmenter it did not have.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional

import numpy as np

from hfspeech.errors import UsageError

DEFAULT_BACKGROUND_SNR_DB = (5.0, 20.0)
MAX_PITCH_SEMITONES = 24.0  # audiomentations' PitchShift refuses more (a ValueError when the augmenter is built)
# +/- dB: a factor of 100 either way; more is a slip (500 made the features inf; trained at chance without a word)
MAX_GAIN_DB = 40.0


def _check_range(name: str, value, low_bound: float = -np.inf) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a (low, high) pair, got {value!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low_bound <= low <= high):
        raise UsageError(f"{name} must be finite with {low_bound} <= low <= high, got {value!r}")
    return low, high


@dataclass
class AugmentationConfig:
    """What to augment and how much; every field left at None is switched off.

    ``noise_prob`` is the chance that noise is added at all (one of white noise or a background
    file when both are set); ``speed_prob`` the chance of speed perturbation; ``p`` the chance that
    the whole chain runs. Gain and shift, when set, always apply with a random amount.
    """

    noise_snr_db: Optional[tuple[float, float]] = None
    noise_dir: Optional[str] = None
    noise_prob: float = 0.5
    speed_factors: Optional[tuple[float, ...]] = None
    speed_prob: float = 0.5
    gain_db: Optional[float] = None
    time_shift_seconds: Optional[float] = None
    endpoint_trim_db: Optional[float] = None
    vtlp_warp: Optional[tuple[float, ...]] = None  # these three: data.augment_speaker
    pitch_semitones: Optional[float] = None
    reverb_prob: Optional[float] = None
    p: float = 1.0

    def __post_init__(self):
        # Normalise lists (from JSON or argparse) to tuples and reject nonsense early.
        if self.noise_snr_db is not None:
            self.noise_snr_db = _check_range("noise_snr_db", self.noise_snr_db)
        if self.speed_factors is not None:
            self.speed_factors = tuple(float(f) for f in self.speed_factors)
            if not self.speed_factors or not all(0 < f <= 4 for f in self.speed_factors):
                raise UsageError(f"speed_factors must be non-empty, each in (0, 4], "
                                 f"got {self.speed_factors}")
        if self.vtlp_warp is not None:
            warps = tuple(self.vtlp_warp)
            self.vtlp_warp = _check_range("vtlp_warp", warps[:1] + warps[-1:])
            if self.vtlp_warp[0] <= 0:
                raise UsageError(f"vtlp_warp must be above 0, got {warps!r}")
        for name in ("gain_db", "time_shift_seconds", "endpoint_trim_db", "pitch_semitones"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value > 0):
                raise UsageError(f"{name} must be a positive number, got {value!r}")
        if (self.gain_db or 0) > MAX_GAIN_DB:
            raise UsageError(f"gain_db must be at most {MAX_GAIN_DB:g} (a random gain in +/- this many dB; "
                             f"{MAX_GAIN_DB:g} dB is a factor of 100), got {self.gain_db:g}")
        if (self.pitch_semitones or 0) > MAX_PITCH_SEMITONES:
            raise UsageError(f"pitch_semitones must be at most {MAX_PITCH_SEMITONES:g}, got {self.pitch_semitones!r}")
        for name in ("noise_prob", "speed_prob", "p", "reverb_prob"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise UsageError(f"{name} must be in [0, 1], got {value!r}")

    @property
    def enabled(self) -> bool:
        return any(v is not None for v in (self.noise_snr_db, self.noise_dir, self.speed_factors, self.gain_db,
                                           self.time_shift_seconds, self.endpoint_trim_db, self.vtlp_warp,
                                           self.pitch_semitones, self.reverb_prob))


def _noise_files(noise_dir: str) -> list[str]:
    """The folder's audio files, each checked now: audiomentations reads a file's length when it is first drawn,
    so a broken one stopped training with a bare EOFError, minutes or hours in."""
    import librosa  # imported by audiomentations' AddBackgroundNoise in any case
    from audiomentations.core.utils import SUPPORTED_EXTENSIONS, find_audio_files

    folder = Path(noise_dir)
    if not folder.is_dir():
        raise UsageError(f"noise_dir {str(folder)!r} is not a folder")
    files = sorted(str(f) for f in find_audio_files(folder, filename_endings=SUPPORTED_EXTENSIONS))
    if not files:
        raise UsageError(f"noise_dir {str(folder)!r} has no audio files ({', '.join(SUPPORTED_EXTENSIONS)})")
    for file in files:
        try:
            with warnings.catch_warnings():  # librosa's audioread fallback warns on each file soundfile cannot read
                warnings.simplefilter("ignore", FutureWarning)
                seconds = librosa.get_duration(path=file)  # what AddBackgroundNoise calls: header only where it can
        except Exception as error:  # noqa: BLE001 -- soundfile, audioread and EOF errors alike mean "unusable"
            raise UsageError(f"noise_dir file {file}: cannot be decoded ({type(error).__name__})") from None
        if not seconds > 0:
            raise UsageError(f"noise_dir file {file}: holds no audio")
    return files


NUMBER_LIST_FLAGS = ("noise_snr_db", "speed_factors", "vtlp_warp")  # `hfspeech train` flags given as '0.9,1.1'


def flag_numbers(name: str, text) -> Optional[tuple[float, ...]]:
    """'5,30' -> (5.0, 30.0); None or '' -> None; anything else a one-line error naming ``--name``."""
    if text is None or str(text).strip() == "":
        return None
    try:
        return tuple(float(part) for part in str(text).split(","))
    except ValueError:
        raise UsageError(f"--{name}: expected comma-separated numbers such as '0.9,1.1', got {text!r}") from None


def noise_files_of_flag(noise_dir: str) -> list[str]:
    """`_noise_files`, its problem named by the flag (`--noise_dir 'noise' is not a folder`), as the check made when
    the command line is read says it: a launched run checks each machine's copy here (`check_augmentation_flags`)."""
    try:
        return _noise_files(noise_dir)
    except UsageError as error:
        raise UsageError(f"--{error}") from None


def check_augmentation_flags(flags) -> None:
    """Check the augmentation flags of ``flags`` (an object with ``AugmentationConfig``'s field names, as
    ``DataArguments``) as the command line is read: a bad value, a missing noise folder or a noise file that does
    not decode is then one line naming the flag, before any data is decoded (it came after, or as a traceback)."""
    values = {f.name: getattr(flags, f.name) for f in fields(AugmentationConfig) if hasattr(flags, f.name)}
    for name in NUMBER_LIST_FLAGS:
        values[name] = flag_numbers(name, values.get(name))
    snr = values["noise_snr_db"]  # one number: that SNR; more: the first to the last, as the run reads it
    values["noise_snr_db"] = snr if snr is None else snr[:1] + snr[-1:]
    try:
        config = AugmentationConfig(**values)
        if config.noise_dir is not None and int(os.environ.get("WORLD_SIZE") or 1) == 1:
            _noise_files(config.noise_dir)  # several processes: each machine's copy later, agreed (`training.run`)
    except UsageError as error:  # the messages start with the field's name, which is the flag's
        raise UsageError(f"--{error}") from None
