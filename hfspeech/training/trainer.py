"""`transformers.Trainer` with the two remedies for class imbalance: a weighted loss and oversampling.

Both work for any model (the baselines and every AutoModelForAudioClassification), because they act
on the logits and on the sampler, not inside the model.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from transformers import Trainer


def inverse_frequency_weights(labels: Sequence[int], num_labels: int) -> np.ndarray:
    """Per-class weights n / (k * count), as scikit-learn's 'balanced'; an absent class gets weight 0."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_labels).astype(np.float64)
    weights = np.zeros(num_labels)
    present = counts > 0
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


class AudioClassificationTrainer(Trainer):
    """A Trainer that can weight the cross-entropy by class and oversample rare classes.

    `class_weights`: one weight per class for the single-label loss (None: the model's own loss).
    `sample_weights`: one weight per training example for a `WeightedRandomSampler` drawing with
    replacement (None: the Trainer's usual sampler).
    """

    def __init__(self, *args, class_weights: Optional[Sequence[float]] = None,
                 sample_weights: Optional[Sequence[float]] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.class_weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.sample_weights = None if sample_weights is None else torch.as_tensor(sample_weights, dtype=torch.double)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.class_weights is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs.logits
        loss = torch.nn.functional.cross_entropy(
            logits.float(), labels, weight=self.class_weights.to(logits.device)
        )
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None):
        if self.sample_weights is None:
            return super()._get_train_sampler(train_dataset)
        generator = torch.Generator().manual_seed(self.args.seed)
        return torch.utils.data.WeightedRandomSampler(
            self.sample_weights, num_samples=len(self.sample_weights), replacement=True, generator=generator
        )
