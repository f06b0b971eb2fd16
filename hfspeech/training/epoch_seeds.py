"""Per-epoch seeds for what a run draws outside torch's global generator, so a resumed run draws as the
uninterrupted one did.

Trainer's checkpoints hold the global random states (Python, numpy, torch), not generators kept in objects: the
random crops and waveform augmentation (`data.transforms.TrainTransform`), `--oversample`'s sampler and mixup's
mixing weights went on from one epoch to the next in one process, so a run resumed at epoch k drew epoch 0's
crops, batches and weights again (a 4-epoch tiny CNN resumed after 2 epochs ended up to 0.03 per weight away from
the uninterrupted run). Here each epoch's batches (`--oversample`, `--group_by_length`) are drawn from (--seed,
epoch), each clip's crop and augmentation from (--seed, epoch, row, occurrence) (`data.transforms.TrainTransform`)
and each batch's mixup from (--seed, step): none of them from the draws before, which a run resumed mid-epoch
(from a `--save_strategy steps` checkpoint: the batches before it are skipped, not drawn) had not made (it ended
up to 0.025 per weight away).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Iterator, Optional

import numpy as np
import torch
from transformers import TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from hfspeech.data.transforms import RowDraw


def epoch_of(state) -> int:
    """The epoch a Trainer is in (0 before the first step): `state.epoch` counts finished fractions of epochs."""
    return int(math.floor((state.epoch or 0) + 1e-6))


def epoch_seed(seed: int, epoch: int) -> int:
    """One 63-bit seed for (seed, epoch); `seed + epoch` would give seed 1's epoch 0 the draws of seed 0's epoch 1."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, np.uint64)[0] >> 1)


class EpochSeeds(TrainerCallback):
    """Tells the training data (a `TransformedSplit`) each epoch as it begins: its crops and augmentation then
    start from (seed, epoch). Non-persistent DataLoader workers copy the data after this; persistent ones, made at
    the first epoch, read it from the memory `TrainTransform` shares with them (`data.transforms.shared_epoch`)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(epoch_of(state))


class EpochSeededSampler:
    """A torch sampler whose `generator` starts each epoch from (seed, epoch). accelerate's data loader calls
    `set_epoch` (as for its own seedable sampler) before every epoch, a resumed one included; iterated again
    without it, it takes the next epoch rather than repeat the last one's draws."""

    def _seed_epoch(self, seed: int) -> None:
        self.seed, self.epoch, self._epoch_drawn = int(seed), 0, False

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._epoch_drawn = int(epoch), False

    def _start_epoch(self) -> None:
        if self._epoch_drawn:
            self.epoch += 1
        self._epoch_drawn = True
        self.generator.manual_seed(epoch_seed(self.seed, self.epoch))


class EpochWeightedSampler(EpochSeededSampler, torch.utils.data.WeightedRandomSampler):
    """`--oversample`'s draws with replacement, each epoch's from (seed, epoch). Each index is a `RowDraw` that
    counts the row's earlier draws in the epoch: a clip drawn twice is cropped and augmented twice, not copied."""

    def __init__(self, weights, seed: int):
        super().__init__(weights, num_samples=len(weights), replacement=True, generator=torch.Generator())
        self._seed_epoch(seed)

    def __iter__(self):
        self._start_epoch()
        return numbered_draws(super().__iter__())


class EpochLengthGroupedSampler(EpochSeededSampler, LengthGroupedSampler):
    """`--group_by_length`'s batches, each epoch's from (seed, epoch): transformers' draws them from the global
    random state, which a run resumed mid-epoch restores only after its first batch (0.07 per weight away)."""

    def __init__(self, batch_size: int, lengths, seed: int):
        super().__init__(batch_size, lengths=lengths, generator=torch.Generator())
        self._seed_epoch(seed)

    def __iter__(self):
        self._start_epoch()
        return super().__iter__()


def numbered_draws(rows: Iterator[int]) -> Iterator[RowDraw]:
    """Each row with how many times it came before in the epoch: the whole epoch's order is drawn at once, so a
    resumed run (its first batches skipped) numbers the rest alike."""
    seen: Counter = Counter()
    for row in rows:
        yield RowDraw(row, seen[row])
        seen[row] += 1


class StepGenerator:
    """A numpy generator per training batch from (seed, optimizer step, batch within the step): mixup's weights.
    A checkpoint falls between optimizer steps, so a resumed run numbers its batches as the uninterrupted one."""

    PURPOSE = 0x6D6978  # "mix": keeps these seeds apart from the clips' (seed, epoch, row, occurrence)

    def __init__(self, seed: int):
        self.seed, self.batch = int(seed), 0
        self.step: Optional[int] = None

    def for_step(self, step: int) -> np.random.Generator:
        self.batch = self.batch + 1 if step == self.step else 0
        self.step = int(step)
        return np.random.default_rng([self.seed, self.PURPOSE, self.step, self.batch])
