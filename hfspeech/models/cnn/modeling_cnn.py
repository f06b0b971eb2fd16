"""CNN baseline: in-model front end -> Conv2d blocks over (frequency, time) -> pooling -> linear.

The last feature map is flattened over (channels, frequency) by default (``frequency_pooling``)
rather than averaged over frequency: averaging makes the network translation-invariant in
frequency, and a small CNN then separates a low tone from a high one only slowly, from edge
effects (see ``test_cnn_learns_where_in_frequency_a_tone_is``).

Padding invariance is exact in eval mode: after each block's ReLU the frames beyond each clip's
length are set to 0 before max pooling, so the pooling window and the next convolution see the
same zeros a clip alone sees through the convolution's own zero padding. Lengths are then
halved with ceil, matching ``MaxPool2d(2, ceil_mode=True)``, which also keeps one frame alive
for any clip of at least one sample. (In train mode BatchNorm's batch statistics include padded
frames; that affects training only.) A batch without padding skips the zeroing (``models.padding``).
"""

from typing import Optional, Union

import torch
from torch import nn
from transformers import PreTrainedModel

from hfspeech.features.frontend import AudioFrontend, SpecAugment
from hfspeech.models.cnn.configuration_cnn import CNNAudioConfig
from hfspeech.models.heads import PooledClassificationMixin, init_conv_weights
from hfspeech.features.hub_push import CodelessPushWarning
from hfspeech.models.padding import PaddingMasks, zero_padding
from hfspeech.models.pooling import BaselineModelOutput, FrontEndEncoderMixin, baseline_output, check_input_values


class CNNAudioPreTrainedModel(CodelessPushWarning, PreTrainedModel):
    config_class = CNNAudioConfig
    base_model_prefix = "cnn"
    main_input_name = "input_values"
    prefers_channels_last = True  # see hfspeech.models.in_fast_layout

    def _init_weights(self, module):
        init_conv_weights(module, self.config.initializer_range)


class CNNBlock(nn.Module):
    """Conv2d -> BatchNorm2d -> ReLU -> (zero padded frames) -> MaxPool2d(2, ceil_mode=True)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor, frame_mask: Optional[torch.Tensor]) -> torch.Tensor:
        # ReLU outputs are >= 0, so a zeroed padded frame never wins the max over a valid one.
        return self.pool(zero_padding(torch.relu(self.norm(self.conv(x))), frame_mask))


class CNNAudioModel(PaddingMasks, FrontEndEncoderMixin, CNNAudioPreTrainedModel):
    """Waveforms ``[B, T]`` -> frame-level hidden states ``[B, frames', hidden_size]``.

    ``hidden_size`` is ``conv_channels[-1] * bins'`` for ``frequency_pooling="flatten"`` (``bins'``
    is ``n_mels`` halved, rounding up, once per block) and ``conv_channels[-1]`` for ``"mean"``.

    ``hidden_states`` (when requested) are the normalised features ``[B, frames, bins]`` and
    then each block's feature map ``[B, C, bins', frames']``.
    """

    # ONNX: a second graph without the padding masks (1.25x faster on unpadded batches, measured 2026-12-02)
    onnx_unpadded_branch = True

    def __init__(self, config: CNNAudioConfig):
        super().__init__(config)
        self.frontend = AudioFrontend(config)
        self.spec_augment = SpecAugment(config)
        in_channels = [1] + config.conv_channels[:-1]
        self.blocks = nn.ModuleList(
            CNNBlock(c_in, c_out, config.conv_kernel_size) for c_in, c_out in zip(in_channels, config.conv_channels)
        )
        self.flatten_frequency = config.frequency_pooling == "flatten"
        bins = self.frontend.num_features
        for _ in config.conv_channels:
            bins = (bins + 1) // 2
        self.hidden_size = config.conv_channels[-1] * (bins if self.flatten_frequency else 1)
        self.post_init()

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[tuple, BaselineModelOutput]:
        check_input_values(input_values, attention_mask)
        padded = self.zeroes_padding(attention_mask)
        if not padded:  # nothing padded: the front end's masking and clip lengths would change nothing
            attention_mask = None
        features, frame_mask, all_hidden_states, output_hidden_states, return_dict = self.front_end(
            input_values, attention_mask, output_hidden_states, return_dict)
        lengths = frame_mask.sum(-1)
        x = features.transpose(1, 2).unsqueeze(1)  # [B, 1, bins, frames]
        for block in self.blocks:
            x = block(x, frame_mask if padded else None)
            lengths = torch.div(lengths + 1, 2, rounding_mode="floor")  # ceil(lengths / 2)
            frame_mask = torch.arange(x.shape[-1], device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
            if output_hidden_states:
                all_hidden_states = all_hidden_states + (x,)
        # Pooled frames past a clip's length only ever saw zeros, so they are 0 here.
        x = x.flatten(1, 2) if self.flatten_frequency else x.mean(dim=2)
        last_hidden_state = x.transpose(1, 2)
        return baseline_output(last_hidden_state, frame_mask, all_hidden_states, return_dict)


class CNNAudioForAudioClassification(PooledClassificationMixin, CNNAudioPreTrainedModel):
    """``CNNAudioModel`` -> masked pooling -> dropout -> linear classifier."""

    def __init__(self, config: CNNAudioConfig):
        super().__init__(config)
        self.cnn = CNNAudioModel(config)
        self.init_head(self.cnn.hidden_size)
        self.post_init()
