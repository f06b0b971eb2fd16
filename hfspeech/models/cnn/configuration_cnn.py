"""Configuration of the hfspeech CNN baseline (``model_type="hfspeech-cnn"``)."""

from hfspeech.models.configuration_baseline import AudioBaselineConfig


class CNNAudioConfig(AudioBaselineConfig):
    """A small VGG-style CNN over log-mel features.

    Args:
        conv_channels: Output channels of each conv block; each block halves time and frequency.
        conv_kernel_size: Square kernel of the Conv2d layers; odd, so "same" padding keeps the
            time length that the padding mask is computed from.
        feature_type, n_mels, pooling, classifier_dropout, apply_spec_augment: see
            ``AudioBaselineConfig`` (only the defaults differ).
        kwargs: Forwarded to ``AudioBaselineConfig`` / ``PretrainedConfig``.
    """

    model_type = "hfspeech-cnn"

    def __init__(
        self,
        conv_channels=(16, 32, 64, 128),
        conv_kernel_size: int = 3,
        feature_type: str = "log_mel",
        n_mels: int = 64,
        pooling: str = "mean",
        classifier_dropout: float = 0.1,
        apply_spec_augment: bool = True,
        **kwargs,
    ):
        if conv_kernel_size % 2 != 1:
            raise ValueError(f"conv_kernel_size must be odd, got {conv_kernel_size}")
        if len(conv_channels) == 0:
            raise ValueError("conv_channels must name at least one block")
        self.conv_channels = list(conv_channels)
        self.conv_kernel_size = conv_kernel_size
        super().__init__(
            feature_type=feature_type,
            n_mels=n_mels,
            pooling=pooling,
            classifier_dropout=classifier_dropout,
            apply_spec_augment=apply_spec_augment,
            **kwargs,
        )
