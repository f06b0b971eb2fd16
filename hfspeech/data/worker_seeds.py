"""What tells the copies of a per-clip random generator apart across DataLoader workers, epochs and processes.

Its own module, below both users (`data.augment`'s augmenter and `data.transforms`' crops), so that reading
`data.transforms` (the crops, the collator) does not import audiomentations and librosa (~1-3 s)."""

from __future__ import annotations

import os

import torch.utils.data


def worker_entropy() -> list[int]:
    """What tells DataLoader workers, epochs and processes apart: `[worker id, torch's per-epoch worker seed]`, then
    the process rank if not 0 (`[]` outside workers in a single process).

    Every worker starts from a copy of the same object, and non-persistent workers are made anew each epoch, so
    a generator kept in the object repeats itself unless this is mixed in. Every process of a distributed run
    seeds alike (accelerate keeps their torch RNGs, hence their workers' seeds, in step): without the rank, each
    rank's n-th clip got the same gain, speed and noise samples."""
    info = torch.utils.data.get_worker_info()
    entropy = [] if info is None else [int(info.id), int(info.seed) % 2**63]
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank = int(torch.distributed.get_rank() if distributed else os.environ.get("RANK") or 0)  # torchrun, accelerate
    return entropy + [rank] if rank else entropy
