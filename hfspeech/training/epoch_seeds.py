"""Per-epoch seeds for what a run draws outside torch's global generator, so a resumed run draws as the
uninterrupted one did.

Trainer's checkpoints hold the global random states (Python, numpy, torch), not generators kept in objects: the
random crops and waveform augmentation (`data.transforms.TrainTransform`), `--oversample`'s sampler and mixup's
mixing weights went on from one epoch to the next in one process, so a run resumed at epoch k drew epoch 0's
crops, batches and weights again (a 4-epoch tiny CNN resumed after 2 epochs ended up to 0.03 per weight away from
the uninterrupted run). Here each epoch starts them from (--seed, epoch) instead. A run resumed mid-epoch (from a
`--save_strategy steps` checkpoint) still draws the rest of that epoch differently: the batches skipped were not
drawn.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from transformers import TrainerCallback


def epoch_of(state) -> int:
    """The epoch a Trainer is in (0 before the first step): `state.epoch` counts finished fractions of epochs."""
    return int(math.floor((state.epoch or 0) + 1e-6))


def epoch_seed(seed: int, epoch: int) -> int:
    """One 63-bit seed for (seed, epoch); `seed + epoch` would give seed 1's epoch 0 the draws of seed 0's epoch 1."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, np.uint64)[0] >> 1)


class EpochSeeds(TrainerCallback):
    """Tells the training data (a `TransformedSplit`) each epoch as it begins: its crops and augmentation then
    start from (seed, epoch). Non-persistent DataLoader workers copy the data after this, so they see it too."""

    def __init__(self, dataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(epoch_of(state))


class EpochWeightedSampler(torch.utils.data.WeightedRandomSampler):
    """`--oversample`'s draws with replacement, each epoch's from (seed, epoch). accelerate's data loader calls
    `set_epoch` (as for its own seedable sampler) before every epoch, a resumed one included; iterated again
    without it, it takes the next epoch rather than repeat the last one's draws."""

    def __init__(self, weights, seed: int):
        super().__init__(weights, num_samples=len(weights), replacement=True, generator=torch.Generator())
        self.seed, self.epoch, self._epoch_drawn = int(seed), 0, False

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._epoch_drawn = int(epoch), False

    def __iter__(self):
        if self._epoch_drawn:
            self.epoch += 1
        self._epoch_drawn = True
        self.generator.manual_seed(epoch_seed(self.seed, self.epoch))
        return super().__iter__()


class EpochGenerator:
    """A numpy generator started again from (seed, epoch) whenever the epoch changes (mixup's weights)."""

    def __init__(self, seed: int):
        self.seed, self.epoch, self.rng = int(seed), None, None

    def for_epoch(self, epoch: int) -> np.random.Generator:
        if epoch != self.epoch:
            self.epoch, self.rng = epoch, np.random.default_rng([self.seed, int(epoch)])
        return self.rng
