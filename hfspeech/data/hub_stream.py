"""`--streaming` from a Hub dataset (or any folder `load_dataset` reads): nothing is read up front.

The dataset is opened with `streaming=True`; nothing is read but the first `--shuffle_buffer_size`
references when validation/test have to be carved out. Labels: the label column's `ClassLabel` names,
else `--class_names`; we do not scan the label column, because a Hub dataset keeps labels in the same
files as the audio and the scan would download the whole corpus. Row count: the footers of local Parquet files
(a clone: exact, so the training stream gets a length and a resumed run skips exactly what it trained; not exact
where its README's configuration `filters:` rows out, as the footers count them too), else the split sizes of the
dataset card, else `--max_steps` is required (`training.streaming`).

The dataset is opened by `data.dataset_opening.open_datasets_dataset`, for the map-style path (`data.loading`)
too: what a user can get wrong in `--dataset_name` / `--dataset_config_name` (a folder that is not there, a Hub name
that cannot be reached, a configuration missing or unknown, a loading script) is one line naming the flag.

Missing validation/test splits: the first K clips of a seeded shuffle of train, K from the split
fractions of the known row count (capped by `--max_eval_samples`), or `--max_eval_samples` itself when
the count is unknown. Those clips are then filtered out of the training stream by a hash of their bytes (by
path when they have none: many Hub datasets give every row the same or a reused file name, and a filter
by name dropped every such row from training), so they cannot leak into training whatever order later
epochs take. A clip stored as bytes without a file name is named by its dataset, split and row in errors
(`data.clip_names`, as without --streaming).

Which splits are train, validation and test: `--train_split_name`, `--eval_split_name`, `--test_split_name`
(`data.split_names`, as without --streaming; slices such as `train[:80%]` refused); others are not read."""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterable, Optional

import pyarrow as pa
from datasets import Audio, ClassLabel, Dataset, Features, IterableDataset, IterableDatasetDict, LargeList, List
from datasets import Sequence as ListFeature
from datasets.exceptions import DatasetsError

from hfspeech.data.labelled import DataSpec
from hfspeech.data.dataset_columns import clip_identity, label_column_of
from hfspeech.data.dataset_opening import open_datasets_dataset, reason_in_one_line
from hfspeech.data.loading import local_parquet_rows
from hfspeech.data.run_scratch import run_scratch_folder
from hfspeech.data.split_names import choose_splits, given_in, refuse_slices_streamed, split_notes
from hfspeech.data.stream_draws import clip_key
from hfspeech.data.system_libraries import plain_audio_features
from hfspeech.data.stream_rows import AudioReference, LabelEncoder, NotHeldOut
from hfspeech.data.streaming import StreamedData, StreamError, prepare_evaluation
from hfspeech.errors import DataError, HfspeechError, writing_to

logger = logging.getLogger(__name__)


def from_streamed_dataset(spec: DataSpec, sampling_rate: int, seed: int, label_names) -> StreamedData:
    """The training stream and the prepared evaluation splits of a streamed dataset."""
    name, given = spec.source["dataset_name"], given_in(spec.source)
    refuse_slices_streamed(given)  # before the dataset is opened
    loaded = open_datasets_dataset(name, spec.source.get("dataset_config_name"), streaming=True)
    streams = loaded if isinstance(loaded, IterableDatasetDict) else IterableDatasetDict({"train": loaded})
    chosen = choose_splits(list(streams), given, name)  # role -> the dataset's split
    splits, label_names = _labelled_streams({split: streams[split] for split in chosen.values()}, chosen["train"],
                                            spec, name, label_names)
    splits = {role: splits[split] for role, split in chosen.items()}
    total, exact = _split_size(streams[chosen["train"]], chosen["train"])
    train = splits.pop("train")
    held_counts = _held_out_counts(spec, name, total, missing=[s for s in ("validation", "test") if s not in splits])
    features = Features({"audio": Audio(decode=False), "label": ClassLabel(names=label_names)})
    eval_sets, held_keys = {}, set()
    if held_counts:
        train, eval_sets, held_keys = _hold_out(train, held_counts, spec, seed, features,
                                                f"{name} (split '{chosen['train']}')")
    for split, stream in splits.items():
        eval_sets[split] = _read_split(stream, spec.max_eval_samples, features, f"{name} (split '{chosen[split]}')")
    eval_sets = {split: rows for split, rows in eval_sets.items() if len(rows)}
    evaluation, report = prepare_evaluation(eval_sets, spec, sampling_rate)
    report.add_listing({}, [], split_notes(chosen, given, {s: _split_size(streams[s], s)[0] for s in streams}, name))
    num_rows = None if total is None else total - len(held_keys)
    if spec.max_train_samples is not None:
        train = train.take(spec.max_train_samples)
        num_rows = spec.max_train_samples if num_rows is None else min(num_rows, spec.max_train_samples)
    train = train.shuffle(seed=seed, buffer_size=spec.shuffle_buffer_size)
    # held-out clips are filtered out by their bytes' hash, which also drops their duplicates: then not exact
    return StreamedData(label_names, train, evaluation, report, num_rows, rows_exact=exact and not held_keys)


@contextmanager
def read_errors(source: str):
    """Inside, a row datasets cannot read while streaming (a data file with other columns, a label id outside
    the ClassLabel of the first split, which datasets imposes on every split of a folder of data files ...) is
    one line naming `source` (a `StreamError`: the same line from a DataLoader worker); hfspeech's own errors
    pass unchanged."""
    try:
        yield
    except HfspeechError:
        raise
    except (ValueError, DatasetsError) as error:
        raise StreamError(f"{source}: cannot be read: {reason_in_one_line(error)}") from error


def _labelled_streams(splits: dict[str, IterableDataset], train: str, spec: DataSpec, name: str, label_names):
    """Every split as a stream of `{audio reference, label id, clip_key}` (`stream_draws.KEY_COLUMN`: the clip's
    hash, computed once), keyed by the dataset's own split names (which
    its clips are named by; `train` is the one trained on), and the label names."""
    label_feature = None
    label_column = label_column_of(splits[train].column_names or [], spec.source.get("label_column", "label"))
    train_label = (splits[train].features or {}).get(label_column)
    for split_name, stream in list(splits.items()):
        stream, feature = _references(stream, spec.source.get("audio_column", "audio"), label_column,
                                      f"{name} (split '{split_name}')", rows_in_order=split_name != train)
        label_feature = label_feature or feature
        splits[split_name] = stream
    if label_names is None:
        if label_feature is None:
            raise DataError(_unknown_classes(name, label_column, train_label))
        label_names = list(label_feature.names)
    return {split: stream.map(LabelEncoder(label_names, label_feature, split))
            for split, stream in splits.items()}, label_names


def _unknown_classes(name: str, label_column: str, feature) -> str:
    """Why the classes of a stream are unknown, and what gives them."""
    if isinstance(feature, (List, LargeList, ListFeature, list)):
        return (f"{name}: the label column '{label_column}' holds a list per clip (multi-label data); --streaming "
                "from a Hub dataset trains single-label classifiers: drop --streaming, or save the dataset with "
                "save_to_disk and stream that")
    return (f"{name}: the label column '{label_column}' is not a ClassLabel, so the classes are unknown until the "
            "whole corpus is read; give them with --class_names a,b,c (their order is the class ids')")


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


def _hold_out(train: IterableDataset, counts: dict[str, int], spec: DataSpec, seed: int, features: Features,
              source: str) -> tuple[IterableDataset, dict[str, Dataset], set]:
    """The first clips of a seeded shuffle of train as evaluation splits (`_written`), filtered out of the
    training stream."""
    evaluation, held_keys = {}, set()
    head = iter(train.shuffle(seed=seed, buffer_size=spec.shuffle_buffer_size))
    for split, count in counts.items():
        evaluation[split], keys = _written((example for _, example in zip(range(count), head)), features, source)
        held_keys.update(keys)
    train = train.filter(NotHeldOut(held_keys))
    logger.info("held out %s clips of the shuffled train stream as %s", sum(counts.values()), " and ".join(counts))
    return train, evaluation, held_keys


def _written(examples: Iterable[dict], features: Features, source: str) -> tuple[Dataset, list[str]]:
    """The examples written to an Arrow file as they are read (without the stream's KEY_COLUMN), and their keys.

    Held in lists, the rows (audio bytes too: 10% of a corpus) were in memory twice, the second time in
    `Dataset.from_list`; here a writer batch at most. The file is in the run's scratch folder (removed at exit,
    `data.run_scratch.run_scratch_folder`); the fingerprint hashes each row's key, path and label, so the decoded
    split is found again by a later run (`data.prepare`) as the fingerprint of the rows held in memory let it be."""
    from datasets import DatasetInfo
    from datasets.arrow_writer import ArrowWriter
    from datasets.fingerprint import Hasher
    from datasets.table import InMemoryTable, MemoryMappedTable

    keys, hasher, folder = [], Hasher(), _scratch_or_none()
    hasher.update(features.to_dict())
    written = writing_to(folder, "the evaluation clips were not written; make room, or set HF_DATASETS_CACHE to a "
                         "folder on another disk") if folder is not None else nullcontext()
    with written, read_errors(source):
        if folder is not None:
            with tempfile.NamedTemporaryFile(dir=folder, suffix=".arrow", delete=False) as file:
                path = file.name
        buffer = None if folder is not None else pa.BufferOutputStream()
        plain = plain_audio_features(features)  # the same Arrow type, written without FFmpeg (torchcodec's encoder)
        with ArrowWriter(features=plain, path=None if buffer else path, stream=buffer) as writer:
            for example in examples:
                keys.append(clip_key(example))
                hasher.update(clip_identity(keys[-1], example["audio"], example["label"]))
                writer.write(plain.encode_example({column: example[column] for column in features}))
            writer.finalize()
    table = (MemoryMappedTable.from_file(path) if buffer is None
             else InMemoryTable(pa.ipc.open_stream(buffer.getvalue()).read_all()))
    return Dataset(table, info=DatasetInfo(features=features), fingerprint=hasher.hexdigest()), keys


def _scratch_or_none() -> Optional[Path]:
    """The run's scratch folder for the rows (`data.run_scratch.run_scratch_folder`), or None: held in memory, once, as
    Arrow, where files cannot be removed while mapped (Windows: they were left for good) or the datasets cache is
    read-only (a shared cache that already holds the decoded splits was refused)."""
    if os.name == "nt":
        return None
    try:
        return run_scratch_folder()
    except (OSError, HfspeechError):
        return None


def _split_size(stream: IterableDataset, split: str) -> tuple[Optional[int], bool]:
    """The number of rows of a streamed split, and whether it is exact: counted from the footers of its files when
    they are local Parquet (`local_parquet_rows`: a clone), else the dataset card's size (which may be out of date),
    else None. Exact, the training stream gets a length, and a resumed run skips exactly the batches it trained on
    (`training.streaming.CountedTrainingStream`); before, a clone's count was not taken as exact, and its resumed
    run trained other clips than the run it continued (0.07 per weight apart after 2 passes)."""
    counted = local_parquet_rows(stream)
    if counted is not None:  # a README `filters:` drops rows the footers count: 40 counted exact, 20 read
        return counted, _reads_every_row(stream)
    sizes = getattr(stream.info, "splits", None) or {}
    known = sizes.get(split) if hasattr(sizes, "get") else None
    return (int(known.num_examples) if known is not None and known.num_examples else None), False


def _reads_every_row(stream: IterableDataset) -> bool:
    """Whether the stream's Parquet builder filters no rows out (its configuration's `filters` is None, which a
    README's `configs:` sets): only then do the files' footers count the rows it yields. Not where the stream is
    read in another way than datasets 4.8's `ArrowExamplesIterable` over the builder's `_generate_tables`."""
    tables = getattr(getattr(stream, "_ex_iterable", None), "generate_tables_fn", None)
    config = getattr(getattr(tables, "__self__", None), "config", None)
    return config is not None and hasattr(config, "filters") and config.filters is None


def _references(stream: IterableDataset, audio_column: str, label_column: str, source: str,
                rows_in_order: bool = True):
    """The stream reduced to `audio` (undecoded `{"path", "bytes"}`), `label` and `clip_key` (the clip's hash, which
    the held-out filter and the draw position reuse); the label's ClassLabel, if any.

    Bytes without a file name are named `<source> row N` (its place in the split), or by a hash of the bytes
    for a training split of several shards, whose rows are counted in the shuffled shard order."""
    columns = stream.column_names
    if columns is not None:
        absent = [c for c in (audio_column, label_column) if c not in columns]
        if absent:
            raise DataError(f"{source}: missing column(s) {absent}; available columns: {columns} (name them with "
                            "--audio_column_name / --label_column_name)")
    features = stream.features
    label_feature = features.get(label_column) if features is not None else None
    if features is not None and isinstance(features.get(audio_column), Audio):
        stream = stream.cast_column(audio_column, Audio(decode=False))

    reference = AudioReference(audio_column, label_column, source, by_row=rows_in_order or stream.num_shards == 1)
    stream = stream.map(reference, with_indices=True, remove_columns=columns)
    return stream, label_feature if isinstance(label_feature, ClassLabel) else None


def _read_split(stream: IterableDataset, limit: Optional[int], features: Features, source: str) -> Dataset:
    """The first `limit` rows of an evaluation split (all without a limit), written as they are read."""
    return _written(stream.take(limit) if limit is not None else stream, features, source)[0]
