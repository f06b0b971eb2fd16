"""The classification half every baseline shares: masked pooling -> dropout -> linear, loss by problem_type.

A mixin rather than a submodule, so the parameters keep the flat names transformers users expect of a
head (`classifier.weight`, which `ignore_mismatched_sizes` replaces when the labels change).
"""

from typing import Optional, Union

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from hfspeech.models.losses import classification_loss
from hfspeech.models.pooling import BaselineModelOutput, build_pooling


class PooledClassificationMixin:
    """For `*ForAudioClassification` models: call `init_head` in `__init__`; `forward` runs the encoder named by
    `base_model_prefix` (a `BaselineModelOutput`) and `classify`."""

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[tuple, SequenceClassifierOutput]:
        encoder = getattr(self, self.base_model_prefix)
        outputs = encoder(input_values, attention_mask, output_hidden_states=output_hidden_states, return_dict=True)
        return self.classify(outputs, labels, return_dict)

    def init_head(self, hidden_size: int) -> None:
        self.pooling, pooled_size = build_pooling(self.config.pooling, hidden_size)
        self.dropout = nn.Dropout(self.config.classifier_dropout)
        self.classifier = nn.Linear(pooled_size, self.config.num_labels)

    def classify(
        self, outputs: BaselineModelOutput, labels: Optional[torch.Tensor], return_dict: Optional[bool]
    ) -> Union[tuple, SequenceClassifierOutput]:
        return_dict = return_dict if return_dict is not None else self.config.use_return_dict
        pooled = self.pooling(outputs.last_hidden_state, outputs.frame_mask)
        logits = self.classifier(self.dropout(pooled))
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        if not return_dict:
            output = (logits,) + ((outputs.hidden_states,) if outputs.hidden_states is not None else ())
            return ((loss,) + output) if loss is not None else output
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


def init_conv_weights(module: nn.Module, initializer_range: float) -> None:
    """`_init_weights` of the convolutional baselines (CNN, BC-ResNet): He init of 2-D convs (fan-out, as
    torchvision's ResNets; fan-in for grouped, depthwise convs, whose fan-out torch computes ignoring groups, so
    they would start sqrt(channels) too small and activations fade block after block), batch norm as identity,
    linears normal(initializer_range)."""
    if isinstance(module, nn.Conv2d):
        mode = "fan_in" if module.groups > 1 else "fan_out"
        nn.init.kaiming_normal_(module.weight, mode=mode, nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=initializer_range)
        nn.init.zeros_(module.bias)
