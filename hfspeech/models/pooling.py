"""Masked pooling over time, shared by every baseline.

The encoders return frame-level hidden states plus a frame mask; pooling turns them into one
vector per clip while ignoring padded frames, which is what makes a clip's prediction the same
alone or inside a padded batch. ``BaselineModelOutput`` is that encoder -> pooling contract.
"""

from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
from torch import nn
from transformers.utils import ModelOutput


@dataclass
class BaselineModelOutput(ModelOutput):
    """Output of a baseline encoder (``CNNAudioModel``, ``LSTMAudioModel``).

    Args:
        last_hidden_state: ``[B, frames, hidden]`` frame-level states, 0 on padded frames.
        frame_mask: ``[B, frames]`` bool, ``True`` on valid frames.
        hidden_states: Per-layer states (``output_hidden_states=True``), input features first.
    """

    last_hidden_state: Optional[torch.FloatTensor] = None
    frame_mask: Optional[torch.BoolTensor] = None
    hidden_states: Optional[tuple[torch.FloatTensor, ...]] = None


def baseline_output(last_hidden_state: torch.Tensor, frame_mask: torch.Tensor,
                    hidden_states: Optional[tuple], return_dict: bool):
    """A baseline encoder's output: `BaselineModelOutput`, or the tuple of what is set when not `return_dict`."""
    if not return_dict:
        return tuple(v for v in (last_hidden_state, frame_mask, hidden_states) if v is not None)
    return BaselineModelOutput(last_hidden_state=last_hidden_state, frame_mask=frame_mask, hidden_states=hidden_states)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x [B, T, D]`` over the frames where ``mask [B, T]`` is true -> ``[B, D]``."""
    weights = mask.unsqueeze(-1).to(x.dtype)
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class MeanPooling(nn.Module):
    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_mean(hidden_states, mask)


class MaxPooling(nn.Module):
    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lowest = torch.finfo(hidden_states.dtype).min
        return hidden_states.masked_fill(~mask.unsqueeze(-1), lowest).max(dim=1).values


class AttentivePooling(nn.Module):
    """Weighted mean with learned per-frame scores (Linear -> tanh -> Linear, masked softmax)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.attention = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.Tanh(), nn.Linear(hidden_size, 1))

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.attention(hidden_states).squeeze(-1)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1).unsqueeze(-1)
        return (hidden_states * weights).sum(1)


class StatisticsPooling(nn.Module):
    """Masked mean and standard deviation concatenated (x-vector style) -> ``[B, 2 * D]``."""

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mean = masked_mean(hidden_states, mask)
        variance = masked_mean((hidden_states - mean.unsqueeze(1)) ** 2, mask)
        return torch.cat([mean, torch.sqrt(variance + self.eps)], dim=-1)


def build_pooling(kind: str, hidden_size: int) -> tuple[nn.Module, int]:
    """Pooling module named by ``config.pooling`` and the size of the vector it returns."""
    if kind == "mean":
        return MeanPooling(), hidden_size
    if kind == "max":
        return MaxPooling(), hidden_size
    if kind == "attentive":
        return AttentivePooling(hidden_size), hidden_size
    if kind == "stats":
        return StatisticsPooling(), 2 * hidden_size
    raise ValueError(f"Unknown pooling {kind!r}; expected one of 'mean', 'max', 'attentive', 'stats'")


class FrontEnd(NamedTuple):
    """The start of a baseline encoder's `forward`: features `[B, frames, bins]` after SpecAugment, their
    frame mask, the hidden states so far (the features, when asked for) and the resolved output flags."""

    features: torch.Tensor
    frame_mask: torch.Tensor
    hidden_states: Optional[tuple]
    output_hidden_states: bool
    return_dict: bool


def float32_front_end(frontend: nn.Module, input_values: torch.Tensor, attention_mask: Optional[torch.Tensor]):
    """The front end outside autocast: under `--bf16` (on by itself on recent GPUs; `--bf16 --use_cpu`) its
    DFT and mel products ran in bf16, and the features a baseline trained on were 0.27 standard deviations off
    the float32 ones `predict` computes, on average over FSDD speech (1.3 at worst). Export and inference, where
    autocast is off, take the plain call."""
    device_type = input_values.device.type
    if not (torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)):
        return frontend(input_values, attention_mask)
    with torch.autocast(device_type, enabled=False):
        return frontend(input_values, attention_mask)


def check_input_values(input_values, attention_mask=None) -> None:
    """A baseline's `input_values` as its front end needs them: a `[batch, samples]` tensor, with an attention mask
    of the same shape. Called by hand from a notebook, a 1-D clip, a `[batch, 1, samples]` tensor or a numpy array
    failed deep in the front end ("too many indices", "shape '[1, 53, 160]' is invalid", "'str' object has no
    attribute 'type'"), and a mask of another length was dropped unread by the CNN; one `ValueError` says what
    to pass instead. Skipped while tracing (an export): the checks would be TracerWarnings, recorded in no graph."""
    if not isinstance(input_values, torch.Tensor):
        raise ValueError(f"input_values must be a torch tensor [batch, samples], got {type(input_values).__name__}: "
                         "use the feature extractor (return_tensors='pt') or torch.as_tensor(...)")
    if input_values.dim() != 2:
        raise ValueError(f"input_values must be [batch, samples], got shape {tuple(input_values.shape)}: "
                         "one clip is input_values[None]; mix channels down first")
    if torch.jit.is_tracing():  # an export: a shape compared here would be a TracerWarning and nothing recorded
        return
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_values.shape):
        raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, input_values "
                         f"{tuple(input_values.shape)}: they must match (the feature extractor returns both)")
    if input_values.shape[-1] == 0:
        raise ValueError("input_values holds no samples (shape "
                         f"{tuple(input_values.shape)}): there is no audio to classify")


class FrontEndEncoderMixin:
    """For the baseline encoders, which hold `self.frontend` (`features.frontend.AudioFrontend`) and
    `self.spec_augment`: the part of `forward` they all share."""

    @property
    def loss_function(self):
        """None: an encoder has no loss. transformers' property would warn "`loss_type=None` ... Using the default
        loss: `ForCausalLMLoss`" (an encoder's class name matches no loss), and `torch.jit.trace` reads it from
        every submodule, so each traced run printed that line about a loss it never uses."""
        return None

    def front_end(self, input_values: torch.Tensor, attention_mask: Optional[torch.Tensor],
                  output_hidden_states: Optional[bool], return_dict: Optional[bool]) -> FrontEnd:
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        return_dict = return_dict if return_dict is not None else self.config.use_return_dict
        features, frame_mask = float32_front_end(self.frontend, input_values, attention_mask)
        if features.dtype != self.dtype:  # float32 waveforms into a half model (pipeline(), Trainer's *_full_eval)
            features = features.to(self.dtype)
        features = self.spec_augment(features, frame_mask)
        return FrontEnd(features, frame_mask, (features,) if output_hidden_states else None, output_hidden_states,
                        return_dict)
