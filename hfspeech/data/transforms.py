"""Per-epoch work on prepared clips: cropping and augmentation, applied lazily on every read.

Training clips get a random crop of at most `max_length_seconds` and, when configured, waveform
augmentation; evaluation clips get a deterministic centre crop and nothing else, so validation and
test numbers do not move from one evaluation to the next. Padding to the longest clip of a batch is
the collator's job (`AudioClassificationCollator`), which also builds the attention mask.

The transforms are attached by `TransformedSplit`, a small torch `Dataset` over the prepared Arrow
split read in numpy format, a whole batch per read. `datasets`' own `with_transform` would hand every
clip over as a Python list of floats (Arrow -> list -> numpy, ~1 ms for a clip of a few seconds), which
made that conversion the largest per-epoch cost; the batched numpy read takes ~16 us per clip
(`benchmarks/data_pipeline.py` measures the whole per-epoch path).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np
import torch
from datasets import Dataset, DatasetDict

from hfspeech.data.audio import seconds_to_samples
from hfspeech.data.multi_hot import multi_hot
from hfspeech.data.worker_seeds import worker_entropy
from hfspeech.models.inputs import extract_features

if TYPE_CHECKING:  # the augmenter's module imports audiomentations and librosa: training only
    from hfspeech.data.augment import WaveformAugmenter


def crop(waveform: np.ndarray, max_samples: Optional[int], rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """A window of at most `max_samples`: at a random offset when `rng` is given, else centred."""
    if max_samples is None or len(waveform) <= max_samples:
        return waveform
    excess = len(waveform) - max_samples
    start = int(rng.integers(0, excess + 1)) if rng is not None else excess // 2
    return waveform[start : start + max_samples]


def shared_epoch(value) -> torch.Tensor:
    """An epoch number in shared memory, as `datasets` keeps a stream's (`IterableDataset._epoch`): a forked
    DataLoader worker maps the same memory, a spawned one gets it through torch's pickler, so a worker made once
    (`persistent_workers`) reads each epoch that the main process sets."""
    epoch = value if isinstance(value, torch.Tensor) else torch.tensor(int(value), dtype=torch.int64)
    try:
        return epoch.share_memory_()  # in place; nothing to do for one already shared (torch's pickler keeps it so)
    except RuntimeError:  # a full or read-only /dev/shm (a sandbox, Docker's 64 MB) stopped every `train`, workers
        return epoch  # or none: unshared it serves a run without workers, and workers need /dev/shm for batches


class RowDraw(int):
    """A row index that also says how many times the epoch drew that row before (`occurrence`). A sampler that
    draws with replacement (`--oversample`) yields these, so each copy of a clip gets a crop and augmentation of
    its own; any other row is its first draw."""

    def __new__(cls, row: int, occurrence: int = 0):
        draw = super().__new__(cls, row)
        draw.occurrence = int(occurrence)
        return draw

    def __reduce__(self):  # to DataLoader workers with its occurrence
        return RowDraw, (int(self), self.occurrence)


class TrainTransform:
    """Augmentation, then a random crop. Reproducible from `seed`, different in each epoch.

    A batch with `rows` draws each clip from (seed, epoch, row, occurrence) alone: not from the clips drawn before
    it, so a run resumed mid-epoch (the batches before its checkpoint skipped, not drawn) and a run with another
    number of DataLoader workers draw the same. `TransformedSplit` adds the rows; the streamed path adds each clip's
    position and pass (`data.stream_draws`). A batch without `rows` (a direct call) draws its clips one after another
    from (seed, epoch, DataLoader worker).

    The epoch is held in shared memory (`shared_epoch`), as `datasets` holds a stream's: persistent DataLoader
    workers copy this object once, at the first epoch, and drew that epoch's crops and augmentation in every epoch
    (a 3-epoch tiny CNN without dropout, 2 workers, ended 0.017 per weight away from non-persistent workers; now 0).
    """

    def __init__(self, max_samples: Optional[int], augmenter: Optional[WaveformAugmenter] = None, seed: int = 0):
        self.max_samples = max_samples
        self.augmenter = augmenter
        self.seed = seed
        self._epoch = shared_epoch(0)
        self._augmenter_epoch = 0  # the epoch this process last told the augmenter
        self._rng: Optional[np.random.Generator] = None
        self._key: Optional[list[int]] = None

    def __setstate__(self, state: dict) -> None:
        """Back in shared memory: a plain pickle (not torch's, which DataLoader workers get) copies the value out."""
        self.__dict__.update(state)
        self._epoch = shared_epoch(self._epoch)

    @property
    def epoch(self) -> int:
        """The epoch `set_epoch` last gave, in whichever process (persistent DataLoader workers read it here); the
        augmenter is moved to it when another process set it."""
        epoch = int(self._epoch)
        if epoch != self._augmenter_epoch and self.augmenter is not None:
            self.augmenter.set_epoch(epoch)
        self._augmenter_epoch = epoch
        return epoch

    def set_epoch(self, epoch: int) -> None:
        """Crops and augmentation of this epoch from (seed, epoch): a run resumed at it draws as the uninterrupted
        run did; they went on from the last epoch's draws, which a resumed run had not made."""
        self._epoch.fill_(int(epoch))  # in place: the workers' copies share this memory
        self._augmenter_epoch = int(epoch)
        if self.augmenter is not None:
            self.augmenter.set_epoch(int(epoch))

    def _generator(self, epoch: int) -> np.random.Generator:
        key = [self.seed, epoch, *(worker_entropy() or [0])]
        if self._rng is None or key != self._key:
            self._rng, self._key = np.random.default_rng(key), key
        return self._rng

    def clip_generator(self, row: int, epoch: Optional[int] = None) -> np.random.Generator:
        """One clip's draws (augmentation seed, then crop) from (seed, epoch, row, occurrence): ~10 us a clip."""
        epoch = self.epoch if epoch is None else epoch
        return np.random.default_rng([self.seed, epoch, int(row), getattr(row, "occurrence", 0)])

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        rows, epoch = batch.get("rows"), batch.get("epoch")  # a streamed batch says the pass it was read in
        epoch = self.epoch if epoch is None else int(epoch)  # else read once a batch (a DataLoader batch has one)
        clips = []
        for i, values in enumerate(batch["input_values"]):
            rng = self._generator(epoch) if rows is None else self.clip_generator(rows[i], epoch)
            # Augment before cropping: speed perturbation changes the length, the crop then fixes it.
            waveform = np.asarray(values, dtype=np.float32)
            if self.augmenter is not None:
                waveform = self.augmenter(waveform, seed=None if rows is None else int(rng.integers(2**32)))
            clips.append(crop(waveform, self.max_samples, rng))
        return {"input_values": clips, "label": batch["label"]}


class EvalTransform:
    """Deterministic centre crop, no augmentation."""

    def __init__(self, max_samples: Optional[int]):
        self.max_samples = max_samples

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        clips = [crop(np.asarray(values, dtype=np.float32), self.max_samples) for values in batch["input_values"]]
        return {"input_values": clips, "label": batch["label"]}


class TransformedSplit(torch.utils.data.Dataset):
    """A prepared split seen through a transform: rows `{"input_values": float32 array, "label": ...}`.

    `split` is the prepared Arrow split (`input_values` + `label`, as `prepare_dataset` makes it) and
    stays available as `.split`. A DataLoader fetches a whole batch with one `__getitems__` call, so the
    transform sees the same batches as it did under `with_transform` and a seeded run crops the same; it also
    gets their row indices as `rows` (`RowDraw`s from an oversampling sampler), which the train transform seeds
    each clip's crop and augmentation from.
    Labels are passed through as Python values: an int, or a list of ints for multi-label.
    """

    def __init__(self, split: Dataset, transform: Callable[[dict[str, list]], dict[str, list]]):
        missing = [c for c in ("input_values", "label") if c not in split.column_names]
        if missing:
            raise ValueError(f"a prepared split needs the columns input_values and label; missing {missing} "
                             f"(columns: {split.column_names})")
        self.split = split
        self.transform = transform
        self._numpy = split.with_format("numpy", columns=["input_values", "label"])

    def __len__(self) -> int:
        return len(self.split)

    def set_epoch(self, epoch: int) -> None:
        """Passed on to the transform (`TrainTransform.set_epoch`); `training.epoch_seeds` calls it."""
        if hasattr(self.transform, "set_epoch"):
            self.transform.set_epoch(epoch)

    def _read(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        rows = self._numpy[[int(i) for i in indices]]
        clips = [np.asarray(clip, dtype=np.float32) for clip in rows["input_values"]]
        labels = [python_label(label) for label in rows["label"]]
        out = self.transform({"input_values": clips, "label": labels, "rows": list(indices)})
        return [{"input_values": clip, "label": label} for clip, label in zip(out["input_values"], out["label"])]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        return self._read(indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"TransformedSplit takes one integer row index, got {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"row {index} is out of range for a split of {len(self)} clips")
        return self._read([int(index) % len(self)])[0]

    def __repr__(self) -> str:
        return f"TransformedSplit({len(self)} clips, transform={type(self.transform).__name__})"


def python_label(label: Any) -> Any:
    """numpy scalars and arrays (from the numpy-formatted read) back to an int or a list of ints."""
    return label.tolist() if isinstance(label, (np.ndarray, np.generic)) else label


def attach_transforms(
    dataset: DatasetDict,
    sampling_rate: int,
    max_length_seconds: Optional[float],
    augmenter: Optional[WaveformAugmenter] = None,
    seed: int = 0,
) -> dict[str, TransformedSplit]:
    """The train transform on `train`, the eval transform on every other split, as `TransformedSplit` views."""
    max_samples = seconds_to_samples(max_length_seconds, sampling_rate) if max_length_seconds else None
    views = {}
    for name, split in dataset.items():
        transform: Callable = (
            TrainTransform(max_samples, augmenter, seed) if name == "train" else EvalTransform(max_samples)
        )
        views[name] = TransformedSplit(split, transform)
    return views


class AudioClassificationCollator:
    """Pads a list of clips with the model's feature extractor (`models.inputs.extract_features`) and stacks
    their labels.

    Single-label: one class id per clip -> `labels` as long ids [B]. Multi-label: a list of class ids
    per clip -> `labels` as a float multi-hot matrix [B, num_labels] (what BCE-with-logits takes), so
    `num_labels` must be given for multi-label data.
    """

    def __init__(self, feature_extractor: Any, num_labels: Optional[int] = None):
        self.feature_extractor = feature_extractor
        self.num_labels = num_labels

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = extract_features(self.feature_extractor, [example["input_values"] for example in examples])
        batch["labels"] = stack_labels([example["label"] for example in examples], self.num_labels)
        return batch


def stack_labels(labels: Sequence[Any], num_labels: Optional[int]) -> torch.Tensor:
    """Class ids -> long `[B]`; lists of class ids (multi-label) -> float multi-hot `[B, num_labels]`."""
    if any(np.ndim(label) > 0 for label in labels):
        if num_labels is None:
            raise ValueError("multi-label examples (a list of class ids each) need AudioClassificationCollator"
                             "(feature_extractor, num_labels=...)")
        return torch.from_numpy(multi_hot(labels, num_labels)).float()
    return torch.tensor(labels, dtype=torch.long)
