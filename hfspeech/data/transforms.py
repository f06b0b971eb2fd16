"""Per-epoch work on prepared clips: cropping and augmentation, applied lazily by `set_transform`.

Training clips get a random crop of at most `max_length_seconds` and, when configured, waveform
augmentation; evaluation clips get a deterministic centre crop and nothing else, so validation and
test numbers do not move from one evaluation to the next. Padding to the longest clip of a batch is
the collator's job (`AudioClassificationCollator`), which also builds the attention mask.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import torch
from datasets import DatasetDict

from hfspeech.data.augment import WaveformAugmenter, worker_entropy


def crop(waveform: np.ndarray, max_samples: Optional[int], rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """A window of at most `max_samples`: at a random offset when `rng` is given, else centred."""
    if max_samples is None or len(waveform) <= max_samples:
        return waveform
    excess = len(waveform) - max_samples
    start = int(rng.integers(0, excess + 1)) if rng is not None else excess // 2
    return waveform[start : start + max_samples]


class TrainTransform:
    """Augmentation, then a random crop. Reproducible from `seed`; different in each DataLoader worker and epoch."""

    def __init__(self, max_samples: Optional[int], augmenter: Optional[WaveformAugmenter] = None, seed: int = 0):
        self.max_samples = max_samples
        self.augmenter = augmenter
        self.seed = seed
        self._rng: Optional[np.random.Generator] = None
        self._worker: Optional[list[int]] = None

    def _generator(self) -> np.random.Generator:
        worker = worker_entropy()
        if self._rng is None or worker != self._worker:
            self._rng, self._worker = np.random.default_rng([self.seed, *(worker or [0])]), worker
        return self._rng

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        rng = self._generator()
        clips = []
        for values in batch["input_values"]:
            # Augment before cropping: speed perturbation changes the length, the crop then fixes it.
            waveform = np.asarray(values, dtype=np.float32)
            if self.augmenter is not None:
                waveform = self.augmenter(waveform)
            clips.append(crop(waveform, self.max_samples, rng))
        return {"input_values": clips, "label": batch["label"]}


class EvalTransform:
    """Deterministic centre crop, no augmentation."""

    def __init__(self, max_samples: Optional[int]):
        self.max_samples = max_samples

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        clips = [crop(np.asarray(values, dtype=np.float32), self.max_samples) for values in batch["input_values"]]
        return {"input_values": clips, "label": batch["label"]}


def attach_transforms(
    dataset: DatasetDict,
    sampling_rate: int,
    max_length_seconds: Optional[float],
    augmenter: Optional[WaveformAugmenter] = None,
    seed: int = 0,
) -> DatasetDict:
    """The train transform on `train`, the eval transform on every other split (as new views)."""
    max_samples = int(round(max_length_seconds * sampling_rate)) if max_length_seconds else None
    views = {}
    for name, split in dataset.items():
        transform: Callable = (
            TrainTransform(max_samples, augmenter, seed) if name == "train" else EvalTransform(max_samples)
        )
        views[name] = split.with_transform(transform, columns=["input_values", "label"])
    return DatasetDict(views)


class AudioClassificationCollator:
    """Pads a list of clips with the model's feature extractor and stacks their labels."""

    def __init__(self, feature_extractor: Any):
        self.feature_extractor = feature_extractor

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.feature_extractor(
            [example["input_values"] for example in examples],
            sampling_rate=self.feature_extractor.sampling_rate,
            padding="longest",
            return_tensors="pt",
        )
        batch["labels"] = torch.tensor([example["label"] for example in examples], dtype=torch.long)
        return batch

