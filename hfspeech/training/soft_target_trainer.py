"""`AudioClassificationTrainer` that can train on soft targets: mixup and distillation (`training.soft_targets`).

With neither configured it is the parent exactly (every path below falls through to it), so the recipe builds
this trainer for every run; `--mixup_alpha` turns mixup on, and `training.distill` turns on distillation by
handing the trainer a teacher (`enable_distillation`) and batches that carry `teacher_logits` (cached), or a
live teacher and batches that carry the raw augmented waveforms (`training.live_teacher`): the teacher then
labels the very (mixed) clips the student is trained on.
"""

from __future__ import annotations

from typing import Optional

import torch

from hfspeech.errors import UsageError
from hfspeech.training.epoch_seeds import StepGenerator
from hfspeech.training.live_teacher import RAW_COLUMN
from hfspeech.training.soft_targets import Distillation, mixup, soft_target_loss
from hfspeech.training.trainer import AudioClassificationTrainer


class SoftTargetTrainer(AudioClassificationTrainer):
    """`mixup_alpha`: Beta(alpha, alpha) mixing of training batches (0: off)."""

    def __init__(self, *args, mixup_alpha: Optional[float] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.mixup_alpha = float(mixup_alpha or 0.0)
        if self.mixup_alpha < 0:
            raise UsageError(f"--mixup_alpha must be >= 0, got {mixup_alpha}")
        self.distillation: Optional[Distillation] = None
        self.live_teacher = None  # training.live_teacher.LiveTeacher: targets computed on every training batch
        self._mixup_rng = StepGenerator(self.args.seed)  # from (seed, step): a resumed run mixes alike
        if self.mixup_alpha and (self.class_weights is not None or self.pos_weight is not None):
            raise UsageError("mixup trains on mixed targets; it does not combine with class weights or pos_weight")

    def enable_distillation(self, distillation: Distillation, live_teacher=None) -> None:
        if self.class_weights is not None or self.pos_weight is not None:
            raise UsageError("distillation does not combine with --class_weighted_loss or "
                             "--pos_weight_from_frequencies")
        self.distillation, self.live_teacher = distillation, live_teacher

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        teacher_logits = inputs.pop("teacher_logits", None)
        raw, raw_lengths = inputs.pop(RAW_COLUMN, None), inputs.pop("teacher_lengths", None)
        if not model.training or (self.distillation is None and not self.mixup_alpha):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        mix = mixup(inputs, self.mixup_alpha, self._mixup_rng.for_step(self.state.global_step))
        teacher_mix = mix
        if self.live_teacher is not None and raw is not None:
            lengths = raw_lengths if mix.lam == 1.0 else torch.maximum(raw_lengths, raw_lengths[mix.permutation.cpu()])
            teacher_logits = self.live_teacher(mix.blend(raw.to(labels.device)), lengths)
            teacher_mix = mix.unmixed()  # the teacher saw the mixed clip: its targets need no mixing
        outputs = model(**mix.inputs)
        loss = soft_target_loss(outputs.logits, labels, mix, self.is_multi_label, teacher_logits,
                                self.distillation or Distillation(distill_weight=0.0),
                                label_smoothing=self.args.label_smoothing_factor, teacher_mix=teacher_mix)
        return (loss, outputs) if return_outputs else loss
