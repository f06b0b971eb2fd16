"""BC-ResNet: in-model front end -> stem -> broadcasted residual blocks -> head conv -> pooling -> linear.

Each block (Kim et al. 2021) applies a frequency-wise depthwise conv with SubSpectralNorm to the 2-D map
``[B, C, bins, frames]`` (``f2``), averages it over frequency, runs a temporal depthwise conv, swish and a
pointwise conv on that 1-D sequence (``f1``) and broadcasts the result back over the bins:
``y = relu(x + f2(x) + f1(mean_freq(f2(x))))`` (a transition block changes channels first and has no ``x``
term). Most of the computation is thus 1-D, which is what makes it small and fast.

Padding invariance is exact in eval mode, as for the CNN: nothing strides or pools in time, so one frame
mask holds throughout, and the input of every convolution that mixes frames (stem, temporal convs, head)
is zeroed beyond each clip's length, so it sees the zeros a clip alone sees through the zero padding.
Frequency-only operations never move information between frames. (In train mode BatchNorm's batch
statistics include padded frames; that affects training only.) A batch without padding skips the zeroing
(``models.padding``).
"""

from typing import Optional, Union

import torch
from torch import nn
from transformers import PreTrainedModel

from hfspeech.features.frontend import AudioFrontend, SpecAugment
from hfspeech.models.bcresnet.configuration_bcresnet import BCResNetAudioConfig
from hfspeech.models.heads import PooledClassificationMixin, init_conv_weights
from hfspeech.features.hub_push import CodelessPushWarning
from hfspeech.models.padding import PaddingMasks, zero_padding
from hfspeech.models.pooling import BaselineModelOutput, FrontEndEncoderMixin, baseline_output, check_input_values


class SubSpectralNorm(nn.Module):
    """BatchNorm with separate statistics per sub-band: ``groups`` bands of ``bins // groups`` bins each."""

    def __init__(self, channels: int, bins: int, groups: int):
        super().__init__()
        self.groups = groups if bins % groups == 0 else 1
        self.norm = nn.BatchNorm2d(channels * self.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, bins, frames = x.shape
        x = x.reshape(batch, channels * self.groups, bins // self.groups, frames)
        return self.norm(x).reshape(batch, channels, bins, frames)


class BCResBlock(nn.Module):
    """One broadcasted residual block; a transition block (``in_channels != out_channels``) has no identity."""

    def __init__(self, in_channels: int, out_channels: int, bins: int, frequency_stride: int, dilation: int,
                 config: BCResNetAudioConfig):
        super().__init__()
        self.transition = in_channels != out_channels
        self.project = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()
        ) if self.transition else nn.Identity()
        self.frequency_conv = nn.Conv2d(out_channels, out_channels, (3, 1), stride=(frequency_stride, 1),
                                        padding=(1, 0), groups=out_channels, bias=False)
        self.out_bins = (bins - 1) // frequency_stride + 1
        self.frequency_norm = SubSpectralNorm(out_channels, self.out_bins, config.sub_spectral_groups)
        self.temporal_conv = nn.Conv2d(out_channels, out_channels, (1, 3), padding=(0, dilation),
                                       dilation=(1, dilation), groups=out_channels, bias=False)
        self.temporal_norm = nn.BatchNorm2d(out_channels)
        self.pointwise = nn.Conv2d(out_channels, out_channels, 1, bias=False)
        self.dropout = nn.Dropout2d(config.block_dropout)

    def forward(self, x: torch.Tensor, frame_mask: Optional[torch.Tensor]) -> torch.Tensor:
        identity = x
        two_d = self.frequency_norm(self.frequency_conv(self.project(x)))
        one_d = zero_padding(two_d.mean(dim=2, keepdim=True), frame_mask)
        one_d = nn.functional.silu(self.temporal_norm(self.temporal_conv(one_d)))
        one_d = self.dropout(self.pointwise(one_d))
        out = two_d + one_d if self.transition else identity + two_d + one_d
        return torch.relu(out)


class BCResNetAudioPreTrainedModel(CodelessPushWarning, PreTrainedModel):
    config_class = BCResNetAudioConfig
    base_model_prefix = "bcresnet"
    main_input_name = "input_values"

    def _init_weights(self, module):
        init_conv_weights(module, self.config.initializer_range)


class BCResNetAudioModel(PaddingMasks, FrontEndEncoderMixin, BCResNetAudioPreTrainedModel):
    """Waveforms ``[B, T]`` -> frame-level hidden states ``[B, frames, 4 * base_channels]``.

    ``hidden_states`` (when requested) are the normalised features ``[B, frames, bins]`` and then each
    stage's feature map ``[B, C, bins', frames]``.
    """

    # No second ONNX graph for unpadded batches: 1.13x faster in fp32 for BC-ResNet-3, but its int8 file would
    # grow from 127 KB to ~234 KB, over the edge budget of 150 KB (measured 2026-12-02).
    onnx_unpadded_branch = False

    def __init__(self, config: BCResNetAudioConfig):
        super().__init__(config)
        self.frontend = AudioFrontend(config)
        self.spec_augment = SpecAugment(config)
        stem_channels = 2 * config.base_channels
        self.stem = nn.Sequential(nn.Conv2d(1, stem_channels, 5, stride=(2, 1), padding=2, bias=False),
                                  nn.BatchNorm2d(stem_channels), nn.ReLU())
        bins = (self.frontend.num_features - 1) // 2 + 1
        self.stages = nn.ModuleList()
        in_channels = stem_channels
        for stage, (blocks, channels) in enumerate(zip(config.blocks_per_stage, config.stage_channels)):
            dilation = 2**stage if config.temporal_dilation else 1
            stride = 2 if stage in config.frequency_stride_stages else 1
            layers = nn.ModuleList()
            for index in range(blocks):
                layers.append(BCResBlock(in_channels, channels, bins, stride if index == 0 else 1, dilation, config))
                bins, in_channels = layers[-1].out_bins, channels
            self.stages.append(layers)
        # The head's depthwise conv spans all remaining bins (5 for 40 mels), collapsing frequency.
        self.head_conv = nn.Conv2d(in_channels, in_channels, (bins, 5), padding=(0, 2), groups=in_channels,
                                   bias=False)
        self.hidden_size = 4 * config.base_channels
        self.head_pointwise = nn.Sequential(nn.Conv2d(in_channels, self.hidden_size, 1, bias=False),
                                            nn.BatchNorm2d(self.hidden_size), nn.ReLU())
        self.post_init()

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[tuple, BaselineModelOutput]:
        check_input_values(input_values, attention_mask)
        features, frame_mask, all_hidden_states, output_hidden_states, return_dict = self.front_end(
            input_values, attention_mask, output_hidden_states, return_dict)
        padding = frame_mask if self.zeroes_padding(attention_mask) else None
        x = self.stem(features.transpose(1, 2).unsqueeze(1))  # [B, C, bins', frames]
        for stage in self.stages:
            for block in stage:
                x = block(zero_padding(x, padding), padding)
            if output_hidden_states:
                all_hidden_states = all_hidden_states + (x,)
        x = self.head_pointwise(self.head_conv(zero_padding(x, padding)))
        last_hidden_state = zero_padding(x, padding).squeeze(2).transpose(1, 2)
        return baseline_output(last_hidden_state, frame_mask, all_hidden_states, return_dict)


class BCResNetAudioForAudioClassification(PooledClassificationMixin, BCResNetAudioPreTrainedModel):
    """``BCResNetAudioModel`` -> masked pooling -> dropout -> linear classifier (the paper's last 1x1 conv)."""

    def __init__(self, config: BCResNetAudioConfig):
        super().__init__(config)
        self.bcresnet = BCResNetAudioModel(config)
        self.init_head(self.bcresnet.hidden_size)
        self.post_init()
