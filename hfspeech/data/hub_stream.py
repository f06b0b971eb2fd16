"""`--streaming` from a Hub dataset (or any folder `load_dataset` reads): nothing is read up front.

The dataset is opened with `streaming=True`; nothing is read but the first `--shuffle_buffer_size`
references when validation/test have to be carved out. Labels: the label column's `ClassLabel` names,
else `--class_names`; we do not scan the label column, because a Hub dataset keeps labels in the same
files as the audio and the scan would download the whole corpus. Row count: the split sizes of the
dataset card when it has them, else `--max_steps` is required (`training.streaming`).

Missing validation/test splits: the first K clips of a seeded shuffle of train, K from the split
fractions of the known row count (capped by `--max_eval_samples`), or `--max_eval_samples` itself when
the count is unknown. Those clips are then filtered out of the training stream by path (or by a hash of
their bytes), so they cannot leak into training whatever order later epochs take.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any, Optional, Sequence

from datasets import Audio, ClassLabel, Dataset, Features, IterableDataset, IterableDatasetDict, load_dataset

from hfspeech.data.audio import describe_source
from hfspeech.data.labelled import DataSpec
from hfspeech.data.loading import SPLIT_ALIASES
from hfspeech.data.streaming import StreamedData, prepare_evaluation
from hfspeech.errors import DataError

logger = logging.getLogger(__name__)


def from_streamed_dataset(spec: DataSpec, sampling_rate: int, seed: int, label_names) -> StreamedData:
    """The training stream and the prepared evaluation splits of a streamed dataset."""
    name = spec.source["dataset_name"]
    loaded = load_dataset(name, spec.source.get("dataset_config_name"), streaming=True)
    splits, label_names = _labelled_streams(loaded, spec, name, label_names)
    total = _split_size(loaded, "train")
    train = splits.pop("train")
    held_counts = _held_out_counts(spec, name, total, missing=[s for s in ("validation", "test") if s not in splits])
    evaluation_raw, held_keys = {}, set()
    if held_counts:
        train, evaluation_raw, held_keys = _hold_out(train, held_counts, spec, seed)
    for split, stream in splits.items():
        limited = stream.take(spec.max_eval_samples) if spec.max_eval_samples is not None else stream
        evaluation_raw[split] = list(limited)
    features = Features({"audio": Audio(decode=False), "label": ClassLabel(names=label_names)})
    eval_sets = {split: Dataset.from_list(rows, features=features) for split, rows in evaluation_raw.items() if rows}
    evaluation, report = prepare_evaluation(eval_sets, spec, sampling_rate)
    num_rows = None if total is None else total - len(held_keys)
    if spec.max_train_samples is not None:
        train = train.take(spec.max_train_samples)
        num_rows = spec.max_train_samples if num_rows is None else min(num_rows, spec.max_train_samples)
    train = train.shuffle(seed=seed, buffer_size=spec.shuffle_buffer_size)
    return StreamedData(label_names, train, evaluation, report, num_rows)


def _labelled_streams(loaded, spec: DataSpec, name: str, label_names):
    """Every split as a stream of `{audio reference, label id}`, and the label names."""
    splits = loaded if isinstance(loaded, IterableDatasetDict) else IterableDatasetDict({"train": loaded})
    splits = {SPLIT_ALIASES.get(split, split): stream for split, stream in splits.items()}
    if "train" not in splits:
        raise DataError(f"{name}: training needs a 'train' split; the data has {list(splits)}")
    label_feature = None
    for split_name, stream in list(splits.items()):
        stream, feature = _references(stream, spec.source.get("audio_column", "audio"),
                                      spec.source.get("label_column", "label"), f"{name} (split '{split_name}')")
        label_feature = label_feature or feature
        splits[split_name] = stream
    if label_names is None:
        if label_feature is None:
            raise DataError(f"{name}: the label column '{spec.source.get('label_column', 'label')}' is not a "
                            "ClassLabel, so the classes are unknown until the whole corpus is read; give them with "
                            "--class_names a,b,c (their order is the class ids')")
        label_names = list(label_feature.names)
    return {split: stream.map(_label_encoder(label_names, label_feature, split))
            for split, stream in splits.items()}, label_names


def _held_out_counts(spec: DataSpec, name: str, total: Optional[int], missing: list[str]) -> dict[str, int]:
    """How many clips of train each missing evaluation split takes (see the module docstring)."""
    shares = {"validation": spec.validation_percentage, "test": spec.test_percentage}
    counts = {}
    for split in missing:
        if shares[split] <= 0:
            continue
        count = round(total * shares[split] / 100) if total is not None else None
        if spec.max_eval_samples is not None:
            count = spec.max_eval_samples if count is None else min(count, spec.max_eval_samples)
        if count is None:
            raise DataError(f"{name}: no '{split}' split and the size of 'train' is unknown, so "
                            f"--{split}_split_percentage cannot be applied; give --max_eval_samples N "
                            f"(the first N clips of a seeded shuffle of train are held out) or "
                            f"--{split}_split_percentage 0")
        counts[split] = max(1, count)
    return counts


def _hold_out(train: IterableDataset, counts: dict[str, int], spec: DataSpec, seed: int):
    """The first clips of a seeded shuffle of train as evaluation splits, filtered out of the training stream."""
    evaluation_raw, held_keys = {}, set()
    head = iter(train.shuffle(seed=seed, buffer_size=spec.shuffle_buffer_size))
    for split, count in counts.items():
        evaluation_raw[split] = [example for _, example in zip(range(count), head)]
        held_keys.update(_reference_key(example["audio"]) for example in evaluation_raw[split])
    train = train.filter(lambda example: _reference_key(example["audio"]) not in held_keys)
    logger.info("held out %s clips of the shuffled train stream as %s", sum(counts.values()), " and ".join(counts))
    return train, evaluation_raw, held_keys


def _split_size(loaded, split: str) -> Optional[int]:
    """The number of rows of a streamed split when the dataset card says it, else None."""
    info = loaded[split].info if isinstance(loaded, IterableDatasetDict) else loaded.info
    sizes = getattr(info, "splits", None) or {}
    known = sizes.get(split) if hasattr(sizes, "get") else None
    return int(known.num_examples) if known is not None and known.num_examples else None


def _references(stream: IterableDataset, audio_column: str, label_column: str, source: str):
    """The stream reduced to `audio` (undecoded `{"path", "bytes"}`) and `label`; the label's ClassLabel, if any."""
    columns = stream.column_names
    if columns is not None:
        absent = [c for c in (audio_column, label_column) if c not in columns]
        if absent:
            raise DataError(f"{source}: missing column(s) {absent}; available columns: {columns}")
    features = stream.features
    label_feature = features.get(label_column) if features is not None else None
    if features is not None and isinstance(features.get(audio_column), Audio):
        stream = stream.cast_column(audio_column, Audio(decode=False))

    def reference(example):
        audio = example[audio_column]
        if isinstance(audio, (str, os.PathLike)):
            audio = {"path": str(audio), "bytes": None}
        return {"audio": audio, "label": example[label_column]}

    stream = stream.map(reference, remove_columns=columns)
    return stream, label_feature if isinstance(label_feature, ClassLabel) else None


def _label_encoder(label_names: Sequence[str], feature: Optional[ClassLabel], split: str):
    index = {name: i for i, name in enumerate(label_names)}

    def encode(example):
        value = example["label"]
        name = feature.int2str(value) if feature is not None and isinstance(value, int) else str(value)
        if value is None or name.strip() == "":
            raise DataError(f"{describe_source(example['audio'])}: empty label in split '{split}'")
        if name not in index:
            raise DataError(f"{describe_source(example['audio'])}: unknown label '{name}' in split '{split}'; "
                            f"known labels: {list(label_names)}")
        return {"label": index[name]}

    return encode


def _reference_key(audio: dict[str, Any]) -> str:
    """What identifies a streamed clip: its path, or a hash of its bytes when it has none."""
    if audio.get("path"):
        return str(audio["path"])
    return "sha1:" + hashlib.sha1(audio.get("bytes") or b"").hexdigest()
