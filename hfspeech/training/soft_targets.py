"""Losses against soft targets: mixup and knowledge distillation, for any classifier.

Both replace the one-hot target with a distribution, so they share one loss:

    loss = (1 - distill_weight) * hard + distill_weight * temperature**2 * soft

``hard`` is the usual loss against the labels (cross-entropy with the run's label smoothing, or BCE for
multi-label), mixed with the permuted labels in proportion ``lam`` under mixup; ``soft`` is the KL divergence
from the teacher's tempered softmax to the student's (sigmoid targets and BCE for a multi-label teacher), the
teacher's probabilities mixed in the same proportion. ``temperature**2`` keeps the soft term's gradients on the
scale of the hard one's (Hinton et al. 2015).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch.nn import functional as F


@dataclass
class MixedBatch:
    """A batch after mixup: ``lam * x + (1 - lam) * x[permutation]`` (``lam`` 1.0: not mixed)."""

    inputs: dict
    permutation: torch.Tensor
    lam: float

    def blend(self, values: torch.Tensor) -> torch.Tensor:
        """Another per-clip tensor of the batch (the teacher's raw waveforms) mixed as the inputs were."""
        if self.lam == 1.0:
            return values
        return self.lam * values + (1 - self.lam) * values[self.permutation.to(values.device)]

    def unmixed(self) -> "MixedBatch":
        """The same batch seen as not mixed: for targets computed on the mixed inputs themselves."""
        return MixedBatch(self.inputs, self.permutation, 1.0)


def main_input(inputs: dict) -> str:
    """The batch's audio: ``input_values`` (waveforms, or AST's spectrograms), or Whisper's ``input_features``
    (a Whisper student stopped on a KeyError in every distillation)."""
    return "input_values" if "input_values" in inputs else "input_features"


def mixup(inputs: dict, alpha: float, rng: np.random.Generator) -> MixedBatch:
    """Mix the waveforms (Whisper: log-mel features) of a batch with a shuffled copy of itself,
    ``lam ~ Beta(alpha, alpha)``.

    The attention mask becomes the union of both clips' masks, so the mixed clip is as long as the longer.
    """
    key = main_input(inputs)
    batch = inputs[key].shape[0]
    permutation = torch.as_tensor(rng.permutation(batch), device=inputs[key].device)
    if alpha <= 0 or batch < 2:
        return MixedBatch(inputs, permutation, 1.0)
    lam = float(rng.beta(alpha, alpha))
    lam = max(lam, 1.0 - lam)  # the clip keeps its own identity; the other one is the lesser part
    mixed = dict(inputs)
    mixed[key] = lam * inputs[key] + (1 - lam) * inputs[key][permutation]
    if inputs.get("attention_mask") is not None:
        mixed["attention_mask"] = torch.maximum(inputs["attention_mask"], inputs["attention_mask"][permutation])
    return MixedBatch(mixed, permutation, lam)


def hard_loss(logits: torch.Tensor, labels: torch.Tensor, mix: MixedBatch, multi_label: bool,
              label_smoothing: float = 0.0) -> torch.Tensor:
    """The labels' loss under mixup: a convex combination of the losses against both clips' labels."""
    logits = logits.float()
    if multi_label:
        target = mix.lam * labels.float() + (1 - mix.lam) * labels.float()[mix.permutation]
        return F.binary_cross_entropy_with_logits(logits, target)
    own = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    if mix.lam == 1.0:
        return own
    other = F.cross_entropy(logits, labels[mix.permutation], label_smoothing=label_smoothing)
    return mix.lam * own + (1 - mix.lam) * other


def soft_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mix: MixedBatch, temperature: float,
              multi_label: bool) -> torch.Tensor:
    """KL(teacher || student) at ``temperature`` (BCE against the teacher's sigmoids for multi-label), times
    ``temperature**2``; the teacher's probabilities are mixed as the inputs were."""
    student = student_logits.float() / temperature
    teacher = teacher_logits.float().to(student.device) / temperature
    if multi_label:
        target = torch.sigmoid(teacher)
        target = mix.lam * target + (1 - mix.lam) * target[mix.permutation]
        return F.binary_cross_entropy_with_logits(student, target) * temperature**2
    target = F.softmax(teacher, dim=-1)
    target = mix.lam * target + (1 - mix.lam) * target[mix.permutation]
    return F.kl_div(F.log_softmax(student, dim=-1), target, reduction="batchmean") * temperature**2


def kl_to_teacher(student_logits: np.ndarray, teacher_logits: np.ndarray, temperature: float = 1.0) -> float:
    """Mean KL(teacher || student) over clips, at ``temperature``: how far a student is from its teacher."""
    student = torch.as_tensor(student_logits, dtype=torch.float32) / temperature
    teacher = torch.as_tensor(teacher_logits, dtype=torch.float32) / temperature
    return float(F.kl_div(F.log_softmax(student, -1), F.softmax(teacher, -1), reduction="batchmean"))


@dataclass
class Distillation:
    """How the teacher's soft targets enter the loss (``distill_weight`` 0: labels only)."""

    temperature: float = 2.0
    distill_weight: float = 0.5


def soft_target_loss(logits: torch.Tensor, labels: torch.Tensor, mix: MixedBatch, multi_label: bool,
                     teacher_logits: Optional[torch.Tensor], distillation: Distillation,
                     label_smoothing: float = 0.0, teacher_mix: Optional[MixedBatch] = None) -> torch.Tensor:
    """``teacher_mix``: how the teacher's targets are mixed (default ``mix``; unmixed for a live teacher that saw
    the mixed clips)."""
    weight = 0.0 if teacher_logits is None else distillation.distill_weight
    hard = hard_loss(logits, labels, mix, multi_label, label_smoothing) if weight < 1 else None
    if weight == 0:
        return hard
    soft = soft_loss(logits, teacher_logits, teacher_mix or mix, distillation.temperature, multi_label)
    return soft if hard is None else (1 - weight) * hard + weight * soft
