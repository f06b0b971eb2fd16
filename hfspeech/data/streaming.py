"""Training from a stream (`--streaming`): each training clip is decoded when a batch needs it.

Without `--streaming` every clip is decoded once into Arrow before training (`data.prepare`), which
needs the disk and the time for the whole corpus up front. With it, the training split stays a
stream of clip *references* (a path, or the encoded bytes of a Hub dataset) and the collator decodes
(`data.audio.decode_audio`, resampled to the model's rate), augments and crops (`TrainTransform`,
as the map-style path does) the clips of each batch. The rest of the run -- model, Trainer,
evaluation, outputs -- is the map-style run's.

Where the stream comes from (decided per source, so each gets what it can give cheaply):

- Local files -- an audio folder, CSV/TSV/JSONL manifests, a folder saved with `save_to_disk`: their
  *index* (one path and one label per clip) is loaded map-style by `data.labelled.load_labelled_splits`,
  exactly as without --streaming. That reads a directory listing or a manifest, never the audio, and gives the label
  names, the exact row count (so `max_steps` is computed), stratified splits, and the same errors for
  missing files and unknown labels. The training index becomes a `datasets.IterableDataset` with
  `to_iterable_dataset`. (`load_dataset("audiofolder", streaming=True)` would give a single shard in
  class-sorted order, which a shuffle buffer smaller than a class turns into one-class batches.)
- Any other `--dataset_name` (a Hub dataset, or a data folder that `load_dataset` reads) is opened with
  `streaming=True` (`data.hub_stream`).

Validation and test are prepared map-style (decoded once and cached by `data.prepare`) for every
source: they are evaluated after every epoch, so decoding them once is cheaper than streaming them
each time, and a set with a length is what lets the Trainer shard it over processes and
`gather_for_metrics` drop the padding duplicates, so test metrics cover the test split exactly once.

Shuffling: a buffer of `--shuffle_buffer_size` references (small: paths or encoded bytes, not
waveforms) after a shuffle of the shard order; both are seeded by `--seed` and change every epoch
(`set_epoch`, which the Trainer calls through accelerate). Each clip's crop and augmentation are drawn from
(seed, pass, its position), not from the clips before it (`data.stream_draws`): a resumed run draws alike.

Several processes: `training.streaming` hands the stream to the Trainer (why decoding is in the collator).

Bad files: an `AudioFileError` naming the file stops training, as in the map-style path (a
`StreamedClipError`, which is the same one line when it is raised in a DataLoader worker process); with
`--skip_bad_files` the clip is dropped, logged, and appended to `streamed_skipped_files.jsonl` in the
output folder (DataLoader workers and processes all append there), from which `data_report.json` counts
them at the end of the run.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
from datasets import Dataset, DatasetDict, Features, IterableDataset, Value

from hfspeech.data.audio import AudioFileError, decode_audio, describe_source, trim_silence
from hfspeech.data.columns import column_values
from hfspeech.data.labelled import DataSpec, load_labelled_splits
from hfspeech.data.labels import label_names_of
from hfspeech.data.prepare import SKIP_HINT, DataReport, prepare_dataset
from hfspeech.data.stream_draws import ROW_COLUMN, clip_position, epoch_of_batch
from hfspeech.data.transforms import TrainTransform
from hfspeech.errors import DataError

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
    rows_exact: bool = False  # `num_train_rows` counted from the files (Parquet footers), not read from a card

    @property
    def exact_train_rows(self) -> Optional[int]:
        """The row count when it is exact, counted from a local index (which also gives `train_labels`) or from the
        footers of a clone's Parquet files, not read from a dataset card: the training stream's length
        (`training.streaming.CountedTrainingStream`), which a resumed run needs to skip what it trained on."""
        return self.num_train_rows if self.train_labels is not None or self.rows_exact else None

    def collator(self, collator: Callable, sampling_rate: int, max_samples: Optional[int], augmenter=None,
                 seed: int = 0, preparation: Optional[dict] = None) -> "StreamingCollator":
        """`collator` behind decoding and the map-style path's training transform (augmentation, random crop)."""
        preparation = preparation or {}
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


class StreamError(DataError):
    """A data error met while reading the training stream, possibly in a DataLoader worker process.

    torch re-raises a worker's exception in the main process as `type(error)("Caught <type> in DataLoader
    worker process N. Original Traceback ... <module>.<type>: <message>")`, and as a RuntimeError for a type
    it cannot build from one string; these classes read their own one-line message back from that text, so
    `--dataloader_num_workers N` reports a bad clip or label as the same one line as without workers."""

    def __init__(self, message: str = ""):
        super().__init__(unwrapped(message))


class StreamedClipError(AudioFileError):
    """A training clip that cannot be decoded (`AudioFileError`) that crosses worker processes (`StreamError`)."""

    def __init__(self, path: str = "", problem: str = ""):
        if not problem:  # rebuilt by torch from a worker's error: one string, whose first ": " ends the path
            path, _, problem = unwrapped(path).partition(": ")
        super().__init__(path, problem)


def unwrapped(text: str) -> str:
    """The message of an error torch re-raised from a DataLoader worker (the last line of its traceback), or
    `text` itself."""
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = text.rstrip().splitlines()[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return text


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
                raise StreamedClipError(error.path, f"{error.problem} ({SKIP_HINT})") from error
            logger.warning("skipping %s (--skip_bad_files)", error)
            if self.skipped_log:
                with open(self.skipped_log, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"path": error.path, "problem": error.problem}) + "\n")
            return None
        return trim_silence(waveform, self.trim_top_db) if self.trim else waveform

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        if not examples or "audio" not in examples[0]:
            return self.collator(examples)
        clips, labels, rows, bad = [], [], [], []
        for example in examples:
            waveform = self.decode(example)
            if waveform is None:
                bad.append(describe_source(example["audio"]))
            else:
                clips.append(waveform)
                labels.append(example["label"])
                rows.append(clip_position(example))
        if not clips:
            raise StreamError(f"every clip of a training batch is unusable ({', '.join(bad)}); "
                              "see streamed_skipped_files.jsonl in the output folder")
        # each clip's draws from (seed, the pass it was read in, its position): `data.stream_draws`
        out = self.transform({"input_values": clips, "label": labels, "rows": rows, "epoch": epoch_of_batch(examples)})
        return self.collator([{"input_values": c, "label": l} for c, l in zip(out["input_values"], out["label"])])


def read_skipped_log(path: str) -> list[dict[str, str]]:
    """The distinct files of a skipped-files log (each epoch and process appends them again)."""
    if not path or not os.path.isfile(path):
        return []
    seen = {}
    with open(path, encoding="utf-8") as f:
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


def load_streamed_data(spec: DataSpec, sampling_rate: int, seed: int, output_dir: Optional[str] = None,
                       multi_label: bool = False) -> StreamedData:
    """The training stream and prepared evaluation splits for `--streaming` (see the module docstring)."""
    if spec.shuffle_buffer_size < 1:
        raise DataError(f"--shuffle_buffer_size must be at least 1, got {spec.shuffle_buffer_size}")
    label_names = parse_label_names(spec.class_names)
    if spec.is_local:
        data = _from_local_index(spec, sampling_rate, seed, label_names, multi_label)
    else:
        if multi_label:
            raise DataError("--streaming from a Hub dataset trains single-label classifiers; for multi-label "
                            "data use local manifests (or drop --streaming)")
        from hfspeech.data.hub_stream import from_streamed_dataset

        data = from_streamed_dataset(spec, sampling_rate, seed, label_names)
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        data.skipped_log = os.path.join(output_dir, SKIPPED_FILES_LOG)
        if os.path.exists(data.skipped_log):
            os.remove(data.skipped_log)  # a previous run's; this run's epochs list every bad file again
    return data


def prepare_evaluation(splits: dict[str, Dataset], spec: DataSpec, sampling_rate: int) -> tuple[DatasetDict, DataReport]:
    """Validation and test decoded once, map-style, whatever the training split is."""
    if not splits:
        return DatasetDict(), DataReport(sampling_rate=sampling_rate)
    return prepare_dataset(DatasetDict(splits), sampling_rate, **spec.preparation)


def _from_local_index(spec: DataSpec, sampling_rate: int, seed: int, label_names, multi_label: bool) -> StreamedData:
    listing = DataReport()
    raw = dict(load_labelled_splits(spec, seed, label_names, multi_label, report=listing))
    index = raw.pop("train")
    evaluation, report = prepare_evaluation(raw, spec, sampling_rate)
    # A seeded permutation first (an index is often sorted by class), then shards whose order and a
    # buffer over them are reshuffled every epoch.
    stream = _sharded_stream(index.shuffle(seed=seed), num_shards=min(len(index), MAX_INDEX_SHARDS))
    stream = stream.shuffle(seed=seed, buffer_size=spec.shuffle_buffer_size)
    report.kept = {"train": len(index), **report.kept}
    report.found, report.ignored, report.notes = listing.found, listing.ignored, listing.notes
    report.limited, report.warnings = listing.limited, listing.warnings
    return StreamedData(label_names_of(index), stream, evaluation, report, len(index),
                        train_labels=column_values(index, "label"))


def _sharded_stream(index: Dataset, num_shards: int) -> IterableDataset:
    """`index.to_iterable_dataset(num_shards)`, the same rows in the same shards, with the index held once.

    Each shard `to_iterable_dataset` makes carries the whole table of an index held in memory (a manifest's), and
    a DataLoader worker started with `spawn` (macOS, Windows) is sent them all pickled, every epoch: up to 256
    copies (14 MB for an index of 320 clips, against 60 KB held once), growing with the manifest."""
    size, extra = divmod(len(index), num_shards)
    starts = [size * shard + min(shard, extra) for shard in range(num_shards + 1)]  # as `Dataset.shard` splits
    rows = [range(starts[shard], starts[shard + 1]) for shard in range(num_shards)]
    features = Features({**index.features, ROW_COLUMN: Value("int64")})
    return IterableDataset.from_generator(_index_rows, features=features, gen_kwargs={"index": index, "shards": rows})


def _index_rows(index: Dataset, shards: list[range]):
    """The rows of `index` in `shards` (row ranges), shard by shard, each with its row number (the clip's
    position, which its crop and augmentation are drawn from: `data.stream_draws`): the generator of
    `_sharded_stream`."""
    for rows in shards:
        for row, example in zip(rows, index.select(rows)):
            yield {**example, ROW_COLUMN: row}
