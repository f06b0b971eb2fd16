"""Where a classifier splits into a frozen base and a trainable head, and the head run from cached features.

With the base frozen (a linear probe, SUPERB style) the base's output for a clip never changes, so it can
be computed once and the head trained from it (`hfspeech.training.feature_cache`). This module knows, per
family, what to keep and how the head turns it into the very logits the whole model gives:

- Whisper, Wav2Vec2, HuBERT, WavLM (and the rest of that family, SEW-D and Wav2Vec2-BERT too): hidden states
  -> (weighted layer sum) -> projector -> mean over valid frames -> classifier. Everything after the encoder is
  linear up to the mean, so the mean over frames of every layer (or of the last one) is kept: `[layers, hidden]` a
  clip.
- AST: the pooled [CLS]+distillation token -> classifier: `[1, hidden]` a clip.
- The baselines (CNN, LSTM): their pooling can be learned (attentive statistics), so the frame-level
  states are kept, `[frames, hidden]` a clip, and pooled in the head with their frame mask.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from hfspeech.errors import UsageError
from hfspeech.models.pooling import masked_mean

POOLED_LAYER_FAMILIES = ("whisper", "whisper-clip-pooling", "wav2vec2", "hubert", "wavlm", "data2vec-audio",
                         "unispeech", "unispeech-sat", "wav2vec2-conformer", "sew", "sew-d", "wav2vec2-bert")


def base_module_name(model: nn.Module) -> str:
    """The attribute holding the pretrained base: `base_model_prefix` ('wav2vec2', 'cnn' ...) as an attribute name
    (SEW-D's prefix is 'sew-d', its attribute `sew_d`: the lookup failed, and a caller read "no base" as "all head"),
    else the child that the model's own `base_model` is, else Whisper's 'encoder' (its prefix names the seq2seq
    'model' its classifier does not have). A model with none of them is a one-line `UsageError`, never a guess."""
    prefix = getattr(model, "base_model_prefix", "") or ""
    for name in dict.fromkeys((prefix, prefix.replace("-", "_"))):
        if name and isinstance(getattr(model, name, None), nn.Module):
            return name
    base = getattr(model, "base_model", model)
    for name, child in model.named_children():
        if child is base and base is not model:
            return name
    if isinstance(getattr(model, "encoder", None), nn.Module):
        return "encoder"
    raise UsageError(f"{type(model).__name__} has no base model (no `{prefix or 'base_model_prefix'}` or `encoder` "
                     "module) to tell from its head")


def family(model: nn.Module) -> Optional[str]:
    """'pooled-layers', 'ast' or 'frames' for the families whose head can run from cached features."""
    model_type = getattr(model.config, "model_type", None)
    if model_type in POOLED_LAYER_FAMILIES and hasattr(model, "projector"):
        return "pooled-layers"
    if model_type == "audio-spectrogram-transformer":
        return "ast"
    if hasattr(model, "classify") and hasattr(model, "pooling"):
        return "frames"
    return None


def _frame_mask(model: nn.Module, frames: int, attention_mask: Optional[torch.Tensor], batch: int) -> torch.Tensor:
    if attention_mask is None:
        return torch.ones(batch, frames, dtype=torch.bool)
    return model._get_feature_vector_attention_mask(frames, attention_mask).bool()


@torch.no_grad()
def encode_for_head(model: nn.Module, inputs: dict[str, torch.Tensor]) -> list[np.ndarray]:
    """What the head needs of each clip in a batch (see the module docstring), as float32 arrays."""
    kind = family(model)
    base = getattr(model, base_module_name(model))
    if kind == "pooled-layers":
        weighted = getattr(model.config, "use_weighted_layer_sum", False)
        outputs = base(**inputs, output_hidden_states=weighted, return_dict=True)
        layers = torch.stack(outputs.hidden_states, 1) if weighted else outputs.last_hidden_state.unsqueeze(1)
        mask = _frame_mask(model, layers.shape[2], inputs.get("attention_mask"), layers.shape[0]).to(layers.device)
        pooled = torch.stack([masked_mean(layers[:, i], mask) for i in range(layers.shape[1])], 1)
        return list(pooled.float().cpu().numpy())
    if kind == "ast":
        return list(base(**inputs, return_dict=True).pooler_output.unsqueeze(1).float().cpu().numpy())
    if kind == "frames":
        outputs = base(**inputs, return_dict=True)
        states, lengths = outputs.last_hidden_state.float().cpu().numpy(), outputs.frame_mask.sum(-1).tolist()
        return [state[:length] for state, length in zip(states, lengths)]
    raise ValueError(f"{type(model).__name__}: no cached-feature head for this family")


def head_logits(model: nn.Module, features: torch.Tensor, frame_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The model's logits from `encode_for_head` features, padded to `[B, n, hidden]` (n frames or layers)."""
    kind = family(model)
    if kind == "pooled-layers":
        if getattr(model.config, "use_weighted_layer_sum", False):
            weights = nn.functional.softmax(model.layer_weights, dim=-1)
            pooled = (features * weights.view(1, -1, 1)).sum(1)
        else:
            pooled = features[:, -1]
        return model.classifier(model.projector(pooled))
    if kind == "ast":
        return model.classifier(features[:, 0])
    if kind == "frames":
        return model.classifier(model.dropout(model.pooling(features, frame_mask)))
    raise ValueError(f"{type(model).__name__}: no cached-feature head for this family")
