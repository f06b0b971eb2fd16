"""Configuration shared by the hfspeech baseline models (CNN, LSTM).

The baselines take raw waveforms and compute their features inside the model
(``hfspeech.features.frontend``), so every setting that shapes those features lives in the
model config: a saved checkpoint then fully describes how to turn audio into logits, and an
exported graph carries the same front end.
"""

import functools
import logging
from typing import Optional

from transformers import PretrainedConfig

logger = logging.getLogger(__name__)

FEATURE_TYPES = ("log_mel", "mfcc", "fbank")
NORMALIZATIONS = ("utterance", "per_bin", "none")
POOLING_TYPES = ("mean", "max", "attentive", "stats")


class AudioBaselineConfig(PretrainedConfig):
    """Front end, SpecAugment, pooling and dropout settings common to the baselines.

    Args:
        sampling_rate: Sampling rate (Hz) the model expects; the feature extractor enforces it.
        feature_type: ``"log_mel"``, ``"mfcc"`` or ``"fbank"`` (Kaldi-style log mel filter bank).
        n_fft, win_length, hop_length: STFT size, analysis window and hop, in samples.
        n_mels: Number of mel filters. n_mfcc: Number of cepstra kept for ``"mfcc"``.
        f_min, f_max: Filter bank range in Hz; ``f_max=None`` means ``sampling_rate / 2``.
        normalize_features: ``"utterance"`` (mean/variance over the whole clip: removes gain, keeps the
            spectral shape), ``"per_bin"`` (CMVN: per feature bin, also removes stationary sounds) or
            ``"none"``; only unpadded frames count.
        apply_spec_augment: Mask random frequency bands and time spans while training.
        num_freq_masks, freq_mask_width, num_time_masks, time_mask_width: SpecAugment masks
            (count and maximum width, in bins or frames).
        pooling: How frame-level hidden states become one vector: one of ``POOLING_TYPES``.
        classifier_dropout: Dropout before the classification layer.
        initializer_range: Standard deviation of the normal init of linear layers.
        kwargs: Forwarded to ``PretrainedConfig`` (``num_labels``, ``id2label``, ``label2id``...).
    """

    def __init__(
        self,
        sampling_rate: int = 16000,
        feature_type: str = "log_mel",
        n_fft: int = 512,
        win_length: int = 400,
        hop_length: int = 160,
        n_mels: int = 64,
        n_mfcc: int = 40,
        f_min: float = 20.0,
        f_max: Optional[float] = None,
        normalize_features: str = "utterance",
        apply_spec_augment: bool = False,
        num_freq_masks: int = 2,
        freq_mask_width: int = 8,
        num_time_masks: int = 2,
        time_mask_width: int = 10,
        pooling: str = "mean",
        classifier_dropout: float = 0.1,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        check_values(dict(locals()))
        self.sampling_rate = sampling_rate
        self.feature_type = feature_type
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.n_mfcc = n_mfcc
        self.f_min = f_min
        self.f_max = f_max
        self.normalize_features = normalize_features
        self.apply_spec_augment = apply_spec_augment
        self.num_freq_masks = num_freq_masks
        self.freq_mask_width = freq_mask_width
        self.num_time_masks = num_time_masks
        self.time_mask_width = time_mask_width
        self.pooling = pooling
        self.classifier_dropout = classifier_dropout
        self.initializer_range = initializer_range
        super().__init__(**kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        """How a saved config.json is read (`from_pretrained`, `AutoConfig`). Runs saved before the checks in
        `check_values` existed may hold values they refuse: a SpecAugment `freq_mask_width` wider than the
        feature bins only ever mattered in training (it masked every bin), so it is narrowed to the bins, with a
        warning, and the model loads and predicts as before; any other refused value changes the features this
        version computes, so it is a ValueError marked `saved_config` that says where it comes from (plain
        ValueErrors and attributes: this module is staged as remote code, where hfspeech's errors are not)."""
        try:
            return super().from_dict(config_dict, **kwargs)
        except ValueError as error:
            if (bins := getattr(error, "feature_bins", None)) is not None:
                _warn_narrowed_masks(error.freq_mask_width, bins)
                return cls.from_dict({**config_dict, "freq_mask_width": bins}, **kwargs)
            saved = ValueError(f"{error}: a value this hfspeech cannot build the model with; a run saved by an "
                               "earlier hfspeech, which accepted it, must be retrained (an ONNX or TorchScript "
                               "export made from it before still runs)")
            saved.saved_config = True  # `models.loading` and `models.folder_checks` name the config.json
            raise saved from error


@functools.lru_cache(maxsize=None)
def _warn_narrowed_masks(width: int, bins: int) -> None:
    """Once per process: a command reads a run's config.json several times (checks, config, model)."""
    logger.warning("config.json: freq_mask_width %s is wider than the %s feature bins (saved by an earlier hfspeech); "
                   "using %s (SpecAugment, training only)", width, bins, bins)


def check_values(values: dict) -> None:
    """A `ValueError` naming the first inconsistent value (the recipe turns it into a one-line usage error)."""
    choices = {"feature_type": FEATURE_TYPES, "pooling": POOLING_TYPES, "normalize_features": NORMALIZATIONS}
    for name, allowed in choices.items():
        if values[name] not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {values[name]!r}")
    # Zero or negative sizes and counts failed as a ZeroDivisionError building the model, or a negative tensor
    # dimension at the first SpecAugment step.
    for name in ("sampling_rate", "n_fft", "win_length", "hop_length", "n_mels", "n_mfcc"):
        check_whole(name, values[name], 1)
    for name in ("num_freq_masks", "freq_mask_width", "num_time_masks", "time_mask_width"):
        check_whole(name, values[name], 0)
    check_probability("classifier_dropout", values["classifier_dropout"])
    bins = values["n_mfcc"] if values["feature_type"] == "mfcc" else values["n_mels"]
    if values["apply_spec_augment"] and values["freq_mask_width"] > bins:
        error = ValueError(f"freq_mask_width ({values['freq_mask_width']}) must not exceed the {bins} feature bins")
        error.freq_mask_width, error.feature_bins = values["freq_mask_width"], bins  # narrowed on load: `from_dict`
        raise error
    if not 0 <= values["f_min"] < (values["f_max"] or values["sampling_rate"] / 2):
        raise ValueError(f"f_min must be >= 0 and below f_max (or sampling_rate / 2), got {values['f_min']!r}")
    if values["n_fft"] % 2:
        raise ValueError(f"n_fft must be even (the front end's DFT takes one radix-2 step), got {values['n_fft']}")
    if values["win_length"] > values["n_fft"]:
        raise ValueError(f"win_length ({values['win_length']}) must not exceed n_fft ({values['n_fft']})")
    if values["feature_type"] == "mfcc" and values["n_mfcc"] > values["n_mels"]:
        raise ValueError(f"n_mfcc ({values['n_mfcc']}) must not exceed n_mels ({values['n_mels']})")
    f_min, f_max = values["f_min"], values["f_max"]
    if f_max is not None and not f_min < f_max <= values["sampling_rate"] / 2:
        raise ValueError(f"need f_min < f_max <= sampling_rate / 2, got f_min={f_min}, f_max={f_max}")


def check_whole(name: str, value, least: int = 1) -> None:
    """A `ValueError` naming `name` unless `value` is a whole number of at least `least`: shared by the families'
    own sizes (the CNN's channels, the LSTM's units), which a 0 let through to torch's layer constructors."""
    if not _whole(value, least):
        raise ValueError(f"{name} must be a whole number >= {least}, got {value!r}")


def check_probability(name: str, value) -> None:
    """A dropout probability in [0, 1], named: above 1, torch refused it building the model, naming no field."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


def _whole(value, least: int) -> bool:
    """Whether ``value`` is a whole number (an int, or a float such as 40.0 from JSON) of at least ``least``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == int(value) >= least
