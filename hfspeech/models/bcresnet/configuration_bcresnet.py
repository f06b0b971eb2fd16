"""Configuration of BC-ResNet (``model_type="hfspeech-bcresnet"``), the small-footprint keyword-spotting family.

Kim et al., "Broadcasted Residual Learning for Efficient Keyword Spotting", Interspeech 2021: a frequency-wise
depthwise convolution on the 2-D feature map, then a temporal depthwise convolution on its average over
frequency, broadcast back over the bins. BC-ResNet-1 has about 9k parameters, BC-ResNet-8 about 320k.
"""

from hfspeech.models.configuration_baseline import AudioBaselineConfig

STAGE_CHANNEL_FACTORS = (1.0, 1.5, 2.0, 2.5)  # x base channels (8 x width_multiplier), as in the paper


class BCResNetAudioConfig(AudioBaselineConfig):
    """BC-ResNet-``width_multiplier`` over log-mel features.

    Args:
        width_multiplier: The paper's tau: 1, 1.5, 2, 3, 6, 8 give BC-ResNet-1 ... -8. Base channels are
            ``int(8 * width_multiplier)``; the stem has twice that, the stages 1x, 1.5x, 2x, 2.5x, the head 4x.
        blocks_per_stage: Blocks in each of the four stages (the paper's 2, 2, 4, 4).
        frequency_stride_stages: Stages whose first block halves the frequency axis (the paper's 1 and 2).
        sub_spectral_groups: Sub-bands of SubSpectralNorm (5 in the paper); a stage whose bin count is not
            divisible by it uses plain batch norm.
        temporal_dilation: Dilate each stage's temporal convolution by 2**stage (1, 2, 4, 8), widening the
            receptive field in time at no cost in parameters.
        block_dropout: Channel (``Dropout2d``) dropout in each block's temporal branch.
        n_mels, pooling, classifier_dropout, apply_spec_augment: see ``AudioBaselineConfig``.
    """

    model_type = "hfspeech-bcresnet"

    def __init__(
        self,
        width_multiplier: float = 1.0,
        blocks_per_stage=(2, 2, 4, 4),
        frequency_stride_stages=(1, 2),
        sub_spectral_groups: int = 5,
        temporal_dilation: bool = True,
        block_dropout: float = 0.1,
        feature_type: str = "log_mel",
        n_mels: int = 40,
        pooling: str = "mean",
        classifier_dropout: float = 0.0,
        apply_spec_augment: bool = True,
        **kwargs,
    ):
        if not width_multiplier > 0 or int(8 * width_multiplier) < 1:
            raise ValueError(f"width_multiplier must be >= 0.125, got {width_multiplier}")
        if len(blocks_per_stage) != len(STAGE_CHANNEL_FACTORS) or min(blocks_per_stage) < 1:
            raise ValueError(f"blocks_per_stage must give 4 stages of >= 1 block, got {list(blocks_per_stage)}")
        if any(not 0 <= s < len(STAGE_CHANNEL_FACTORS) for s in frequency_stride_stages):
            raise ValueError(f"frequency_stride_stages must name stages 0-3, got {list(frequency_stride_stages)}")
        if sub_spectral_groups < 1:
            raise ValueError(f"sub_spectral_groups must be >= 1, got {sub_spectral_groups}")
        if not 0.0 <= block_dropout < 1.0:
            raise ValueError(f"block_dropout must be in [0, 1), got {block_dropout}")
        self.width_multiplier = width_multiplier
        self.blocks_per_stage = list(blocks_per_stage)
        self.frequency_stride_stages = list(frequency_stride_stages)
        self.sub_spectral_groups = sub_spectral_groups
        self.temporal_dilation = temporal_dilation
        self.block_dropout = block_dropout
        super().__init__(feature_type=feature_type, n_mels=n_mels, pooling=pooling,
                         classifier_dropout=classifier_dropout, apply_spec_augment=apply_spec_augment, **kwargs)

    @property
    def base_channels(self) -> int:
        return int(8 * self.width_multiplier)

    @property
    def stage_channels(self) -> list[int]:
        return [int(self.base_channels * factor) for factor in STAGE_CHANNEL_FACTORS]
