"""LSTM baseline: in-model front end -> optional projection -> stacked (Bi)LSTM -> pooling -> linear.

Padded frames must not leak into valid ones, and the model must still export (ONNX,
TorchScript), so ``pack_padded_sequence`` is out. Instead:

* the forward direction is a plain ``nn.LSTM``: padding comes after a clip's valid frames, so
  it cannot influence them;
* the backward direction is another unidirectional ``nn.LSTM`` run over each clip reversed
  *within its valid length* (an ``arange``/``gather`` index, padding left in place at the end),
  and its output is reversed back the same way.

The outputs on valid frames are thus exactly those of the clip alone; padded frames hold
garbage that masked pooling ignores and that is zeroed in ``last_hidden_state``.
"""

from typing import Optional, Union

import torch
from torch import nn
from transformers import PreTrainedModel

from hfspeech.features.frontend import AudioFrontend, SpecAugment
from hfspeech.models.heads import PooledClassificationMixin
from hfspeech.features.hub_push import CodelessPushWarning
from hfspeech.models.lstm.configuration_lstm import LSTMAudioConfig
from hfspeech.models.pooling import BaselineModelOutput, FrontEndEncoderMixin, baseline_output, check_input_values


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the first ``lengths[b]`` steps of each ``x[b]`` (``[B, T, D]``); padding stays put.

    The permutation is its own inverse, so the same call undoes it.
    """
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    lengths = lengths.unsqueeze(1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class LSTMAudioPreTrainedModel(CodelessPushWarning, PreTrainedModel):
    config_class = LSTMAudioConfig
    base_model_prefix = "lstm"
    main_input_name = "input_values"

    def _init_weights(self, module):
        """Xavier input weights, orthogonal recurrent weights, forget-gate bias 1 (LSTM folklore
        that keeps early gradients flowing); normal init for linear layers."""
        if isinstance(module, nn.LSTM):
            for name, param in module.named_parameters():
                if name.startswith("weight_ih"):
                    nn.init.xavier_uniform_(param)
                elif name.startswith("weight_hh"):
                    nn.init.orthogonal_(param)
                elif name.startswith("bias"):
                    nn.init.zeros_(param)
                    if name.startswith("bias_ih"):
                        param.data[module.hidden_size : 2 * module.hidden_size] = 1.0
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
            nn.init.zeros_(module.bias)


class LSTMLayer(nn.Module):
    """One layer: forward ``nn.LSTM`` and, if bidirectional, a length-aware backward one."""

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool):
        super().__init__()
        self.forward_lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.backward_lstm = nn.LSTM(input_size, hidden_size, batch_first=True) if bidirectional else None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # oneDNN on some CPUs (an AMD EPYC, session 43) has no bf16 LSTM: `--bf16 --use_cpu` stopped with
            # "could not create a primitive descriptor"; the recurrence runs in float32, the layers after it in bf16
            with torch.autocast("cpu", enabled=False):
                return self.recur(x.float(), lengths)
        return self.recur(x, lengths)

    def recur(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        output, _ = self.forward_lstm(x)
        if self.backward_lstm is not None:
            backward, _ = self.backward_lstm(reverse_within_lengths(x, lengths))
            output = torch.cat([output, reverse_within_lengths(backward, lengths)], dim=-1)
        return output


class LSTMAudioModel(FrontEndEncoderMixin, LSTMAudioPreTrainedModel):
    """Waveforms ``[B, T]`` -> frame-level hidden states ``[B, frames, directions * hidden]``.

    ``hidden_states`` (when requested) are the normalised features and then each layer's output.
    """

    def __init__(self, config: LSTMAudioConfig):
        super().__init__(config)
        self.frontend = AudioFrontend(config)
        self.spec_augment = SpecAugment(config)
        input_size = self.frontend.num_features
        self.projection = None
        if config.input_projection_size:
            self.projection = nn.Linear(input_size, config.input_projection_size)
            input_size = config.input_projection_size
        self.layers = nn.ModuleList()
        for _ in range(config.num_lstm_layers):
            self.layers.append(LSTMLayer(input_size, config.lstm_hidden_size, config.bidirectional))
            input_size = config.lstm_hidden_size * (2 if config.bidirectional else 1)
        self.output_size = input_size
        self.dropout = nn.Dropout(config.lstm_dropout)
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
        lengths = frame_mask.sum(-1)
        x = self.projection(features) if self.projection is not None else features
        for index, layer in enumerate(self.layers):
            x = layer(self.dropout(x) if index > 0 else x, lengths)
            if output_hidden_states:
                all_hidden_states = all_hidden_states + (x,)
        last_hidden_state = x * frame_mask.unsqueeze(-1).to(x.dtype)
        return baseline_output(last_hidden_state, frame_mask, all_hidden_states, return_dict)


class LSTMAudioForAudioClassification(PooledClassificationMixin, LSTMAudioPreTrainedModel):
    """``LSTMAudioModel`` -> masked pooling -> dropout -> linear classifier."""

    def __init__(self, config: LSTMAudioConfig):
        super().__init__(config)
        self.lstm = LSTMAudioModel(config)
        self.init_head(self.lstm.output_size)
        self.post_init()
