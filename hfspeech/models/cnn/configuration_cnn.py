"""Configuration of the hfspeech CNN baseline (``model_type="hfspeech-cnn"``)."""

from hfspeech.models.configuration_baseline import AudioBaselineConfig, check_whole

FREQUENCY_POOLING_TYPES = ("flatten", "mean")


class CNNAudioConfig(AudioBaselineConfig):
    """A small VGG-style CNN over log-mel features.

    Args:
        conv_channels: Output channels of each conv block; each block halves time and frequency.
        conv_kernel_size: Square kernel of the Conv2d layers; odd, so "same" padding keeps the
            time length that the padding mask is computed from.
        frequency_pooling: How the last feature map ``[C, bins', frames']`` becomes one vector
            per frame: ``"flatten"`` (``C * bins'`` values, keeps where in frequency energy is) or
            ``"mean"`` over frequency (``C`` values; translation-invariant in frequency, so a
            small CNN tells a 300 Hz tone from a 2500 Hz one only slowly, via edge effects).
        feature_type, n_mels, pooling, classifier_dropout, apply_spec_augment: see
            ``AudioBaselineConfig`` (only the defaults differ).
        kwargs: Forwarded to ``AudioBaselineConfig`` / ``PretrainedConfig``.
    """

    model_type = "hfspeech-cnn"

    def __init__(
        self,
        conv_channels=(16, 32, 64, 128),
        conv_kernel_size: int = 3,
        frequency_pooling: str = "flatten",
        feature_type: str = "log_mel",
        n_mels: int = 64,
        pooling: str = "mean",
        classifier_dropout: float = 0.1,
        apply_spec_augment: bool = True,
        **kwargs,
    ):
        if conv_kernel_size % 2 != 1:
            raise ValueError(f"conv_kernel_size must be odd, got {conv_kernel_size}")
        if frequency_pooling not in FREQUENCY_POOLING_TYPES:
            raise ValueError(f"frequency_pooling must be one of {FREQUENCY_POOLING_TYPES}, got {frequency_pooling!r}")
        if len(conv_channels) == 0:
            raise ValueError("conv_channels must name at least one block")
        for block, channels in enumerate(conv_channels):  # a 0 failed at the first forward, in torch's convolution
            check_whole(f"conv_channels[{block}]", channels, 1)
        self.conv_channels = list(conv_channels)
        self.conv_kernel_size = conv_kernel_size
        self.frequency_pooling = frequency_pooling
        super().__init__(
            feature_type=feature_type,
            n_mels=n_mels,
            pooling=pooling,
            classifier_dropout=classifier_dropout,
            apply_spec_augment=apply_spec_augment,
            **kwargs,
        )
