"""Whisper's encoder as a classifier that averages only the frames covering the clip.

transformers' `WhisperForAudioClassification` averages every frame of its window. Whisper pads a clip to the
window with silence, so a 1-s keyword in a 5-s window is four-fifths silence in that mean. Measured on FSDD with
the frozen tiny.en encoder (leave one speaker out, three seeds; `benchmarks/whisper_context.py`): a probe on the
whole 5-s window scores 0.925, on the clip's own frames of the same window 0.9755, the best of any window or
pooling tried (the 1-s window, where clip and window nearly coincide: 0.9655). The encoder hears a short clip
better with silence after it, as in its training, as long as the silence is not averaged in.

The clip's frames come from the feature extractor's attention mask, returned when its `return_attention_mask`
is set: per mel frame when asked for in the call (`extractor(..., return_attention_mask=True)`, which hfspeech
does), per sample otherwise (what `pipeline()` passes); either is accepted. Without a mask every frame counts,
exactly as in `WhisperForAudioClassification`. The weights are that class's, under the same names, so any
Whisper checkpoint or Whisper classifier loads into it; everything after the encoder is linear up to the mean,
so the frozen-feature cache (`models.frozen`) stays exact with the masked mean.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from transformers import WhisperForAudioClassification
from transformers.modeling_outputs import SequenceClassifierOutput

from hfspeech.features.hub_push import CodelessPushWarning
from hfspeech.models.losses import classification_loss
from hfspeech.models.pooling import masked_mean
from hfspeech.models.whisper.configuration_clip_pooling import WhisperClipPoolingConfig


class WhisperClipPoolingForAudioClassification(CodelessPushWarning, WhisperForAudioClassification):
    """Encoder -> (weighted layer sum) -> projector -> mean over the clip's frames -> classifier."""

    config_class = WhisperClipPoolingConfig

    def _get_feature_vector_attention_mask(self, frames: int, attention_mask: torch.Tensor) -> torch.Tensor:
        """`[B, frames]` bool, true on the encoder frames that cover the clip. `attention_mask` is per mel frame
        (two per encoder frame) or per sample; either way a whole number of its steps make one encoder frame,
        and a frame that covers any of the clip counts."""
        steps = attention_mask.shape[-1] // frames
        lengths = (attention_mask.sum(-1) + steps - 1) // steps
        return torch.arange(frames, device=attention_mask.device)[None, :] < lengths.clamp(min=1)[:, None]

    def forward(self, input_features: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                head_mask: Optional[torch.Tensor] = None, labels: Optional[torch.Tensor] = None,
                output_attentions: Optional[bool] = None, output_hidden_states: Optional[bool] = None,
                return_dict: Optional[bool] = None, **kwargs) -> SequenceClassifierOutput:
        weighted = self.config.use_weighted_layer_sum
        outputs = self.encoder(input_features, head_mask=head_mask, output_attentions=output_attentions,
                               output_hidden_states=True if weighted else output_hidden_states, return_dict=True)
        if weighted:
            layers = torch.stack(outputs.hidden_states, dim=1)
            states = (layers * nn.functional.softmax(self.layer_weights, dim=-1).view(-1, 1, 1)).sum(dim=1)
        else:
            states = outputs.last_hidden_state
        states = self.projector(states)
        if attention_mask is None:
            pooled = states.mean(dim=1)
        else:
            pooled = masked_mean(states, self._get_feature_vector_attention_mask(states.shape[1], attention_mask))
        logits = self.classifier(pooled)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                        attentions=outputs.attentions)
