"""Training from a stream (`--streaming`): each training clip is decoded when a batch needs it.

Without `--streaming` every clip is decoded once into Arrow before training (`data.prepare`), which
needs the disk and the time for the whole corpus up front. With it, the training split stays a
stream of clip *references* (a path, or the encoded bytes of a Hub dataset) and the collator decodes
(`data.audio.decode_audio`, resampled to the model's rate), augments and crops (`TrainTransform`,
as the map-style path does) the clips of each batch. The rest of the run -- model, Trainer,
evaluation, outputs -- is the map-style run's.

Where the stream comes from (decided per source, so each gets what it can give cheaply):

- Local files -- an audio folder, CSV/TSV/JSONL manifests, a folder saved with `save_to_disk`: their
  *index* (one path and one label per clip) is loaded map-style by `data.loading`, exactly as without
  --streaming. That reads a directory listing or a manifest, never the audio, and gives the label
  names, the exact row count (so `max_steps` is computed), stratified splits, and the same errors for
  missing files and unknown labels. The training index becomes a `datasets.IterableDataset` with
  `to_iterable_dataset`. (`load_dataset("audiofolder", streaming=True)` would give a single shard in
  class-sorted order, which a shuffle buffer smaller than a class turns into one-class batches.)
- Any other `--dataset_name` (a Hub dataset, or a data folder that `load_dataset` reads) is opened with
  `streaming=True`; nothing is read up front but the first `--shuffle_buffer_size` references when
  validation/test have to be carved out. Labels: the label column's `ClassLabel` names, else
  `--class_names`; we do not scan the label column, because a Hub dataset keeps labels in the same
  files as the audio and the scan would download the whole corpus. Row count: the split sizes of the
  dataset card when it has them, else `--max_steps` is required.
- Missing validation/test splits of a streamed dataset: the first K clips of a seeded shuffle of train,
  K from the split percentages of the known row count (capped by `--max_eval_samples`), or
  `--max_eval_samples` itself when the count is unknown. Those clips are then filtered out of the
  training stream by path (or by a hash of their bytes), so they cannot leak into training whatever
  order later epochs take.

Validation and test are prepared map-style (decoded once and cached by `data.prepare`) for every
source: they are evaluated after every epoch, so decoding them once is cheaper than streaming them
each time, and a set with a length is what lets the Trainer shard it over processes and
`gather_for_metrics` drop the padding duplicates, so test metrics cover the test split exactly once.

Shuffling: a buffer of `--shuffle_buffer_size` references (small: paths or encoded bytes, not
waveforms) after a shuffle of the shard order; both are seeded by `--seed` and change every epoch
(`set_epoch`, which the Trainer calls through accelerate).

Several processes (`accelerate launch --num_processes N`): the stream is handed to the Trainer as a
plain torch `IterableDataset` (`TrainingStream`) with accelerate's batch dispatching off, so
accelerate's `IterableDatasetShard` gives process i the i-th batch of every N, and completes the last
round from the first batches: every process reads the (cheap) reference stream, decodes only its own
batches, and all processes have the same number of batches per epoch -- unequal epochs would
deadlock DDP. (accelerate's default for iterable data, dispatching from process 0, concatenates the
processes' batches and fails as soon as they are padded to different lengths; `datasets`' shard split
gives processes unequal epochs.) That is also why decoding is in the collator: a bad file skipped with
`--skip_bad_files` makes its batch one clip smaller instead of one process's epoch shorter.

Bad files: an `AudioFileError` naming the file stops training, as in the map-style path; with
`--skip_bad_files` the clip is dropped, logged, and appended to `streamed_skipped_files.jsonl` in the
output folder (DataLoader workers and processes all append there), from which `data_report.json` counts
them at the end of the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from transformers import TrainerCallback
from datasets import (Audio, ClassLabel, Dataset, DatasetDict, Features, IterableDataset, IterableDatasetDict,
                      load_dataset)

from hfspeech.data.audio import AudioFileError, decode_audio, describe_source, trim_silence
from hfspeech.data.loading import SPLIT_ALIASES, DataError, encode_labels, load_audio_dataset
from hfspeech.data.prepare import DataReport, prepare_dataset
from hfspeech.data.splits import make_splits
from hfspeech.data.transforms import TrainTransform

logger = logging.getLogger(__name__)

SKIPPED_FILES_LOG = "streamed_skipped_files.jsonl"
MAX_INDEX_SHARDS = 256  # shards of a local index: their order is reshuffled every epoch


@dataclass
class StreamedData:
    """A streamed training split, prepared evaluation splits, and what is known about them up front."""

    label_names: list[str]
    train: IterableDataset  # references {"audio": {"path", "bytes"}, "label": id}, shuffled per epoch
    evaluation: DatasetDict  # validation/test, decoded map-style by `prepare_dataset`
    report: DataReport
    num_train_rows: Optional[int]  # None when the source does not say (a Hub dataset without split sizes)
    train_labels: Optional[list] = None  # the training labels, when the index is local (class weights)
    skipped_log: Optional[str] = field(default=None)

    def training_stream(self) -> "TrainingStream":
        return TrainingStream(self.train, self.num_train_rows)

    def collator(self, collator: Callable, sampling_rate: int, max_samples: Optional[int], augmenter=None,
                 seed: int = 0, data_args=None) -> "StreamingCollator":
        """`collator` behind decoding and the map-style path's training transform (augmentation, random crop)."""
        preparation = data_args.preparation() if data_args is not None else {}
        return StreamingCollator(collator, TrainTransform(max_samples, augmenter, seed), sampling_rate,
                                 preparation.get("trim", False), preparation.get("trim_top_db", 40.0),
                                 preparation.get("skip_bad_files", False), self.skipped_log)

    def add_skipped_files(self, report: DataReport) -> None:
        """Fold the bad training files skipped during the run (read from the log) into `report`."""
        skipped = read_skipped_log(self.skipped_log) if self.skipped_log else []
        if skipped:
            report.skipped["train"] = skipped
        if self.num_train_rows is not None:
            report.kept["train"] = self.num_train_rows - len(skipped)


class PassCounter(TrainerCallback):
    """Makes the logged `epoch` count passes over the stream.

    With no length to go by, the Trainer counts an epoch as `max_steps` steps, so a pass over the
    stream ended at "epoch 0.25"; at the end of each pass this sets it to the number of passes made
    (a pass cut short by `--max_steps` counts as one).
    """

    def on_epoch_end(self, args, state, control, **kwargs):
        if state.epoch is not None:
            state.epoch = float(math.floor(state.epoch + 1e-9) + 1)
        return control


class TrainingStream(torch.utils.data.IterableDataset):
    """The reference stream as a plain torch `IterableDataset`, so accelerate shards it by batches.

    A `datasets.IterableDataset` with several shards would be split by shards instead, which gives
    processes unequal epochs (see the module docstring). `set_epoch` reaches the stream's shuffle.
    """

    def __init__(self, stream: IterableDataset, num_rows: Optional[int] = None):
        self.stream = stream
        self.num_rows = num_rows

    def set_epoch(self, epoch: int) -> None:
        self.stream.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.stream)


class StreamingCollator:
    """Decodes and transforms the streamed clips of a batch, then pads them with `collator`.

    Examples that are already decoded (`input_values`: the map-style validation and test views) are
    passed straight to `collator`, so one collator serves training and evaluation.
    """

    def __init__(self, collator: Callable, transform: Callable, sampling_rate: int, trim: bool = False,
                 trim_top_db: float = 40.0, skip_bad_files: bool = False, skipped_log: Optional[str] = None):
        self.collator = collator
        self.transform = transform
        self.sampling_rate = sampling_rate
        self.trim = trim
        self.trim_top_db = trim_top_db
        self.skip_bad_files = skip_bad_files
        self.skipped_log = skipped_log

    def decode(self, example: dict[str, Any]) -> Optional[np.ndarray]:
        try:
            waveform = decode_audio(example["audio"], self.sampling_rate)
        except AudioFileError as error:
            if not self.skip_bad_files:
                raise
            logger.warning("skipping %s (--skip_bad_files)", error)
            if self.skipped_log:
                with open(self.skipped_log, "a") as f:
                    f.write(json.dumps({"path": error.path, "problem": error.problem}) + "\n")
            return None
        return trim_silence(waveform, self.trim_top_db) if self.trim else waveform

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not examples or "audio" not in examples[0]:
            return self.collator(examples)
        clips, labels, bad = [], [], []
        for example in examples:
            waveform = self.decode(example)
            if waveform is None:
                bad.append(describe_source(example["audio"]))
            else:
                clips.append(waveform)
                labels.append(example["label"])
        if not clips:
            raise DataError(f"every clip of a training batch is unusable ({', '.join(bad)}); "
                            "see streamed_skipped_files.jsonl in the output folder")
        out = self.transform({"input_values": clips, "label": labels})
        return self.collator([{"input_values": c, "label": l} for c, l in zip(out["input_values"], out["label"])])


def read_skipped_log(path: str) -> list[dict[str, str]]:
    """The distinct files of a skipped-files log (each epoch and process appends them again)."""
    if not path or not os.path.isfile(path):
        return []
    seen = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                entry = json.loads(line)
                seen.setdefault(entry["path"], entry)
    return list(seen.values())


def parse_label_names(text: Optional[str]) -> Optional[list[str]]:
    """'yes,no,up' -> ['yes', 'no', 'up'] (the order is the class ids'); None stays None."""
    if text is None or not str(text).strip():
        return None
    names = [name.strip() for name in str(text).split(",") if name.strip()]
    if len(set(names)) != len(names):
        raise DataError(f"--class_names has duplicates: {names}")
    return names


def is_local_source(data_args) -> bool:
    """Audio folders, manifests and `save_to_disk` folders have a cheap index (see the module docstring)."""
    if data_args.data_dir or data_args.train_file or data_args.validation_file or data_args.test_file:
        return True
    saved = Path(data_args.dataset_name or "")
    return saved.is_dir() and ((saved / "dataset_dict.json").exists() or (saved / "state.json").exists())


def load_streamed_data(data_args, sampling_rate: int, seed: int, output_dir: Optional[str] = None,
                       multi_label: bool = False) -> StreamedData:
    """The training stream and prepared evaluation splits for `--streaming` (see the module docstring)."""
    if data_args.oversample:
        raise DataError("--oversample draws training clips by index, which a stream does not have; "
                        "drop --streaming or --oversample (--class_weighted_loss works with local data)")
    if data_args.shuffle_buffer_size < 1:
        raise DataError(f"--shuffle_buffer_size must be at least 1, got {data_args.shuffle_buffer_size}")
    label_names = parse_label_names(data_args.class_names)
    local = is_local_source(data_args)
    if data_args.class_weighted_loss and not local:
        raise DataError("--class_weighted_loss needs the training labels up front, which a streamed Hub dataset "
                        "does not give; drop it, or stream local files (audio folder or manifests)")
    if local:
        data = _from_local_index(data_args, sampling_rate, seed, label_names, multi_label)
    else:
        if multi_label:
            raise DataError("--streaming from a Hub dataset trains single-label classifiers; for multi-label "
                            "data use local manifests (or drop --streaming)")
        data = _from_streamed_dataset(data_args, sampling_rate, seed, label_names)
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        data.skipped_log = os.path.join(output_dir, SKIPPED_FILES_LOG)
        if os.path.exists(data.skipped_log):
            os.remove(data.skipped_log)  # a previous run's; this run's epochs list every bad file again
    return data


def _eval_limits(raw: dict, data_args, seed: int) -> dict:
    for name in ("validation", "test"):
        limit = data_args.max_eval_samples
        if name in raw and limit is not None and limit < len(raw[name]):
            raw[name] = raw[name].shuffle(seed=seed).select(range(limit))
    return raw


def _prepare_evaluation(splits: dict[str, Dataset], data_args, sampling_rate: int) -> tuple[DatasetDict, DataReport]:
    if not splits:
        return DatasetDict(), DataReport(sampling_rate=sampling_rate)
    return prepare_dataset(DatasetDict(splits), sampling_rate, **data_args.preparation())


def _from_local_index(data_args, sampling_rate: int, seed: int, label_names, multi_label: bool) -> StreamedData:
    listing = DataReport()
    raw = load_audio_dataset(**data_args.source(), report=listing)
    if "train" not in raw:
        raise DataError(f"training needs a 'train' split; the data has {list(raw)} (give --train_file, "
                        "or an audio folder without split folders, or a dataset with a train split)")
    raw = encode_labels(raw, label_names, multi_label=multi_label,
                        separator=getattr(data_args, "label_separator", ";"))
    raw = dict(make_splits(raw, data_args.validation_split_percentage / 100,
                           data_args.test_split_percentage / 100, seed))
    index = raw.pop("train")
    if data_args.max_train_samples is not None and data_args.max_train_samples < len(index):
        index = index.shuffle(seed=seed).select(range(data_args.max_train_samples))
    evaluation, report = _prepare_evaluation(_eval_limits(raw, data_args, seed), data_args, sampling_rate)
    feature = index.features["label"]
    names = list(getattr(feature, "feature", feature).names)
    # A seeded permutation first (an index is often sorted by class), then shards whose order and a
    # buffer over them are reshuffled every epoch.
    stream = index.shuffle(seed=seed).to_iterable_dataset(num_shards=min(len(index), MAX_INDEX_SHARDS))
    stream = stream.shuffle(seed=seed, buffer_size=data_args.shuffle_buffer_size)
    report.kept = {"train": len(index), **report.kept}
    report.found, report.ignored, report.notes = listing.found, listing.ignored, listing.notes
    return StreamedData(names, stream, evaluation, report, len(index), train_labels=list(index["label"]))


def _from_streamed_dataset(data_args, sampling_rate: int, seed: int, label_names) -> StreamedData:
    name = data_args.dataset_name
    loaded = load_dataset(name, data_args.dataset_config_name, streaming=True)
    splits = loaded if isinstance(loaded, IterableDatasetDict) else IterableDatasetDict({"train": loaded})
    splits = {SPLIT_ALIASES.get(split, split): stream for split, stream in splits.items()}
    if "train" not in splits:
        raise DataError(f"{name}: training needs a 'train' split; the data has {list(splits)}")
    label_feature = None
    for split_name, stream in list(splits.items()):
        stream, feature = _references(stream, data_args.audio_column_name, data_args.label_column_name,
                                      f"{name} (split '{split_name}')")
        label_feature = label_feature or feature
        splits[split_name] = stream
    if label_names is None:
        if label_feature is None:
            raise DataError(f"{name}: the label column '{data_args.label_column_name}' is not a ClassLabel, so "
                            "the classes are unknown until the whole corpus is read; give them with "
                            "--class_names a,b,c (their order is the class ids')")
        label_names = list(label_feature.names)
    splits = {split: stream.map(_label_encoder(label_names, label_feature, split)) for split, stream in splits.items()}

    total = _split_size(loaded, "train")
    train = splits.pop("train")
    missing = [split for split in ("validation", "test") if split not in splits]
    shares = {"validation": data_args.validation_split_percentage, "test": data_args.test_split_percentage}
    held_counts = {}
    for split in missing:
        if shares[split] <= 0:
            continue
        count = round(total * shares[split] / 100) if total is not None else None
        if data_args.max_eval_samples is not None:
            count = data_args.max_eval_samples if count is None else min(count, data_args.max_eval_samples)
        if count is None:
            raise DataError(f"{name}: no '{split}' split and the size of 'train' is unknown, so "
                            f"--{split}_split_percentage cannot be applied; give --max_eval_samples N "
                            f"(the first N clips of a seeded shuffle of train are held out) or "
                            f"--{split}_split_percentage 0")
        held_counts[split] = max(1, count)

    evaluation_raw: dict[str, list] = {}
    held_keys: set[str] = set()
    if held_counts:
        head = iter(train.shuffle(seed=seed, buffer_size=data_args.shuffle_buffer_size))
        for split, count in held_counts.items():
            evaluation_raw[split] = [example for _, example in zip(range(count), head)]
            held_keys.update(_reference_key(example["audio"]) for example in evaluation_raw[split])
        train = train.filter(lambda example: _reference_key(example["audio"]) not in held_keys)
        logger.info("held out %s clips of the shuffled train stream as %s",
                    sum(held_counts.values()), " and ".join(held_counts))
    for split, stream in splits.items():
        limited = stream.take(data_args.max_eval_samples) if data_args.max_eval_samples is not None else stream
        evaluation_raw[split] = list(limited)

    features = Features({"audio": Audio(decode=False), "label": ClassLabel(names=label_names)})
    eval_sets = {split: Dataset.from_list(rows, features=features) for split, rows in evaluation_raw.items() if rows}
    evaluation, report = _prepare_evaluation(eval_sets, data_args, sampling_rate)

    num_rows = None if total is None else total - len(held_keys)
    if data_args.max_train_samples is not None:
        train = train.take(data_args.max_train_samples)
        num_rows = data_args.max_train_samples if num_rows is None else min(num_rows, data_args.max_train_samples)
    train = train.shuffle(seed=seed, buffer_size=data_args.shuffle_buffer_size)
    return StreamedData(label_names, train, evaluation, report, num_rows)


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


def streaming_max_steps(num_rows: Optional[int], training_args) -> int:
    """`--max_steps` for a stream: given, or the epochs' steps over a known row count; else a clear error.

    Every process gets `ceil(rows / (batch * processes))` batches per epoch (accelerate completes the
    last round), and `gradient_accumulation_steps` batches make one step.
    """
    if training_args.max_steps and training_args.max_steps > 0:
        return training_args.max_steps
    if num_rows is None:
        raise DataError("--streaming from a dataset whose size is unknown needs --max_steps N: the learning-rate "
                        "schedule has to know the number of steps before the first one")
    batches = math.ceil(num_rows / (training_args.per_device_train_batch_size * training_args.world_size))
    steps_per_epoch = math.ceil(batches / training_args.gradient_accumulation_steps)
    return max(1, math.ceil(training_args.num_train_epochs * steps_per_epoch))


def configure_streaming_training(training_args, num_rows: Optional[int]) -> None:
    """What the Trainer needs for a stream: `max_steps`, and batches sharded per process, not dispatched."""
    training_args.max_steps = streaming_max_steps(num_rows, training_args)
    # A plain-torch TrainingStream + no dispatching = accelerate's IterableDatasetShard (see the module docstring).
    training_args.accelerator_config.dispatch_batches = False
    logger.info("streaming %s training clips: %d steps", "an unknown number of" if num_rows is None else num_rows,
                training_args.max_steps)
