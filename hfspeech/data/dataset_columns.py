"""A `datasets` dataset's audio and label columns, reduced to the `audio` / `label` shape the rest of hfspeech reads.

Real datasets are not all built like the ones in datasets' tutorials: Common Voice has a `path` beside its `audio`,
a CSV clone or a parquet file written by pandas holds its paths as `large_string`, some hold bare sample arrays,
and a dataset of paths (a `save_to_disk` folder, a JSON clone) is fingerprinted by the path strings alone. Each is
read as the user meant (whatever datasets' `Audio` casts), or refused in one line naming the dataset and the column.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Optional, Sequence

from datasets import Audio, Dataset, DatasetDict, Value, concatenate_datasets

from hfspeech.data.clip_names import name_pathless_audio
from hfspeech.errors import DataError, first_few

CASTABLE_VALUES = ("string", "large_string", "binary", "large_binary")  # paths, or a file's bytes
# A change replayed on an Arrow file that leaves its rows as they are (each split cut from it has its own count of it)
METADATA_ONLY = "replace_schema_metadata"


def audio_and_label(dataset: DatasetDict, name: str, audio_column: str, label_column: str) -> DatasetDict:
    """The splits reduced to `audio` (undecoded, every clip with a name: `data.clip_names`, keyed by its file's
    `file_stat` where it is read from a file) and `label`. `dataset` holds the splits the run uses, keyed by their
    own names (the names that clips are named by). The two columns are selected before they are renamed: a
    dataset may have another column of the target name (Common Voice's `audio` beside `path`)."""
    label_column = label_column_of(next(iter(dataset.values())).column_names, label_column)
    if audio_column == label_column:
        raise DataError(f"{name}: --audio_column_name and --label_column_name both name {audio_column!r}")
    used = {}
    for split_name, split in dataset.items():
        source = f"{name} (split '{split_name}')"
        _require_columns(split, [audio_column, label_column], source)
        split = split.select_columns([audio_column, label_column])  # splits may have other columns
        renames = {old: new for old, new in ((audio_column, "audio"), (label_column, "label")) if old != new}
        split = split.rename_columns(renames) if renames else split
        split = as_audio_column(split, source, audio_column)
        stats = audio_file_stats(split, source)  # before empty cells are named (`<empty audio cell: ...>`)
        split = name_pathless_audio(split, source)
        used[split_name] = keyed_by_stats(split, stats) if stats else split
    return DatasetDict(used)


def as_audio_column(split: Dataset, source: str, column: str) -> Dataset:
    """`split`'s `audio` column as `Audio(decode=False)`: audio, bytes and paths, or paths as text (`large_string`
    cast to `string` first, which datasets' `Audio` cast refuses); anything else is one line saying what to do
    (bare sample arrays have no sampling rate hfspeech could trust)."""
    feature = split.features["audio"]
    if isinstance(feature, Value) and feature.dtype == "large_string":
        split = split.cast_column("audio", Value("string"))
    elif not (isinstance(feature, Audio) or (isinstance(feature, Value) and feature.dtype in CASTABLE_VALUES)
              or (isinstance(feature, dict) and {"bytes", "path", "array"} & set(feature))):  # what Audio casts
        raise DataError(f"{source}: the audio column {column!r} holds {_kind(feature)}, not audio (an Audio "
                        "column, or file paths as text); to use sample arrays, store them as audio with their "
                        "sampling rate: dataset.map(lambda row: {'audio': {'array': row['audio'], "
                        "'sampling_rate': RATE}}, features=...Audio()), then save_to_disk")
    return split.cast_column("audio", Audio(decode=False))


def _kind(feature) -> str:
    """A name for what a column that is not audio holds, for the one-line refusal."""
    from datasets import Array2D, LargeList, List, Sequence as SequenceFeature

    if isinstance(feature, (List, LargeList, SequenceFeature, Array2D)):
        return f"arrays of numbers ({feature})"
    return f"{feature} values"


def audio_file_stats(split: Dataset, source: str) -> list:
    """The `file_stat` of every clip read from a file (no bytes, a path), to key the split by (`keyed_by_stats`):
    caches keyed by the fingerprint would otherwise serve a file's old audio after it was replaced under the same
    name. One stat a file, as manifests pay. A split none of whose clips exists is one line naming the dataset
    (relative paths are read from the current folder), not one error per file that `--skip_bad_files` would all
    skip."""
    paths = _file_paths(split)
    stats = [file_stat(path) for path in paths]
    missing = [path for path, stat in zip(paths, stats) if stat is None]
    if missing and len(missing) == len(split):  # some found: each missing one is a decoding error, or skipped
        relative = not all(os.path.isabs(path) or "://" in path for path in missing)
        where = (f"; its paths are relative, read from the current folder ({os.getcwd()}): run from the folder "
                 "they are relative to, or store absolute paths") if relative else ""
        if any("://" in path for path in missing):
            where += "; hfspeech reads local files, not URLs: download them, or store the audio in the dataset"
        raise DataError(f"{source}: none of its {len(missing)} audio files found: "
                        f"{first_few(missing, limit=3)}{where}")
    return stats


def _file_paths(split: Dataset) -> list[str]:
    """The paths of the clips decoding reads from a file (bytes absent), from Arrow without reading any bytes."""
    import pyarrow.compute as pc

    paths = []
    for chunk in split.with_format("arrow")[:].column("audio").chunks:
        from_file = pc.and_(pc.is_valid(chunk), pc.is_null(chunk.field("bytes")))
        paths += [path for path in pc.filter(chunk.field("path"), from_file).to_pylist() if path]
    return paths


def file_stat(path: str) -> Optional[tuple[int, int, int]]:
    """What says a file changed without reading it: size, mtime and ctime (None: no such file). ctime too because
    `touch -r`, `cp -p` or `rsync -t` put an old mtime on new audio, but cannot set the ctime."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):  # a dangling link has its own stat; no file (a NUL in the name), none
        try:
            info = os.lstat(path)
        except (OSError, ValueError):
            return None
    return info.st_size, info.st_mtime_ns, info.st_ctime_ns


def clip_identity(key: str, audio: dict, label) -> tuple:
    """What keys a streamed clip's decoded audio (`data.hub_stream`): its key, path and label, and for a clip read
    from a file its `file_stat`, as `keyed_by_stats` keys a split (a replaced file kept its old decoded audio)."""
    if audio.get("bytes") is None and audio.get("path"):
        return key, audio["path"], label, file_stat(audio["path"])
    return key, audio.get("path"), label


def keyed_by_stats(dataset: Dataset, stats: list) -> Dataset:
    """`dataset` with a fingerprint made of its own and its files' `file_stat`. A dataset of paths is otherwise
    fingerprinted by the path strings alone, and caches keyed by the fingerprint downstream (prepared audio,
    frozen features, teacher logits) would then serve audio that was overwritten under the same name."""
    dataset._fingerprint = hashlib.sha256(json.dumps([dataset._fingerprint, stats]).encode()).hexdigest()[:32]
    return dataset


def rows_key(split: Dataset, known_stats: dict) -> str:
    """What names the rows of the table behind `split`, whichever of them it selects: its Arrow files (path,
    `file_stat`) and the changes replayed on them, or the rows themselves when held in memory, and the `file_stat`
    of every audio file the table names (`known_stats`, {path: stat}, holds those already read and gets the new);
    not the schema's metadata, which holds the fingerprint and is replaced a different number of times per split.
    An Arrow file is known by its size and mtime, not its ctime (`arrow_file_stat`), which audio files are keyed by.
    A carved split's own fingerprint hashes the seed's draw, so a cache keyed by it was decoded again for every
    `--seed` (`whole_table_keys`); this key is the same for every draw from the same rows and files."""
    import pyarrow.compute as pc
    from datasets.fingerprint import Hasher
    from datasets.table import ConcatenationTable, MemoryMappedTable

    table = split.data
    blocks = [block for row in table.blocks for block in row] if isinstance(table, ConcatenationTable) else [table]
    parts = [(block.path, arrow_file_stat(block.path),
              [replay for replay in block.replays if replay[0] != METADATA_ONLY])
             if isinstance(block, MemoryMappedTable) else Hasher.hash(block.table) for block in blocks]
    paths = pc.struct_field(table.table.column("audio"), "path").to_pylist()  # `Audio(decode=False)`: a struct
    known_stats.update({path: file_stat(path) for path in set(paths) if path and path not in known_stats})
    stats = json.dumps([known_stats.get(path) for path in paths]).encode()  # dill hashed them one by one: 0.2 s
    return Hasher.hash([parts, str(table.schema), hashlib.sha256(stats).hexdigest()])  # a fold of 30,000 clips


def arrow_file_stat(path: str) -> Optional[tuple[int, int]]:
    """An Arrow file's size and mtime: `datasets` writes a file whole and renames it in, so a rewrite changes its
    mtime; its ctime changes with its modes too, and a team's cache made read-only (`chmod -R a-w`) or given to
    another owner was decoded again under new names, and refused where it could no longer be written."""
    stat = file_stat(path)
    return stat[:2] if stat else None


def whole_table_keys(dataset: DatasetDict) -> dict[str, str]:
    """{split: `rows_key` of the table it selects rows of}, for the splits `data.prepare` decodes as that whole table
    (cross-validate's folds too: `parts_of_one_table`): a split carved by a seeded draw (`data.splits`) was decoded
    and cached under its draw, +28 MB for each new `--seed` or `--max_train_samples` over 1,000 half-second clips.
    Only where the run's splits use at least half the table's rows: decoding it all costs at most twice the splits'
    own decoding, once, where `--max_*_samples` keep few."""
    keys, stats, used = {}, {}, {}
    for name, split in dataset.items():
        if split._indices is not None and "audio" in split.column_names:
            keys[name] = rows_key(split, stats)
            used[keys[name]] = used.get(keys[name], 0) + len(split)
    return {name: key for name, key in keys.items() if 2 * used[key] >= dataset[name].data.num_rows}


def parts_of_one_table(dataset: DatasetDict) -> DatasetDict:
    """The splits as selections of one table of all their rows, in one order whichever split holds each row (by every
    column: path, label, group), each split keeping its rows in its order: cross-validate's folds of one manifest,
    which split the same rows otherwise, then select from one table, which `whole_table_keys` decodes once for every
    fold (decoded fold by fold, K folds were K decodes and K cached copies of the same audio). Splits held in memory
    only (manifests); others are left as they are."""
    from datasets import DatasetInfo
    from datasets.arrow_writer import ArrowWriter
    from datasets.table import InMemoryTable

    splits = list(dataset.values())
    if len(splits) < 2 or any(split._indices is not None or split.cache_files for split in splits):
        return dataset
    union = concatenate_datasets(splits)
    rows = [json.dumps(row, sort_keys=True, default=repr) for row in union.data.table.to_pylist()]
    order = sorted(range(len(rows)), key=rows.__getitem__)  # rows alike in every column are one row whatever the tie
    # named by its rows and their files' `file_stat`, not by the splits it was made of: the name is in the table's
    # metadata, which `rows_key` reads, and a split too small for the whole table (`--max_train_samples`) is cached
    # under its own fingerprint, made from this name: without the stats, a clip replaced kept its old audio
    stats = sorted(file_stat(path) or () for path in _file_paths(union))
    named = hashlib.sha256(json.dumps([union.features.to_dict(), [rows[i] for i in order], stats]).encode()
                           ).hexdigest()[:32]
    # the rows taken in `order` by Arrow, one chunk a column, the metadata datasets writes naming `named` (not the
    # union's fingerprint, which differs per fold): `flatten_indices` cast them again row by row in a writer (3 s of
    # a fold's 4 at 30,000 rows, every fold)
    table = union.data.table.take(order).combine_chunks().replace_schema_metadata(
        ArrowWriter._build_metadata(DatasetInfo(features=union.features), named))
    whole = Dataset(InMemoryTable(table), info=union.info.copy(), split=union.split, fingerprint=named)
    place = [0] * len(order)  # place[row of the union] = its row in `whole`
    for position, row in enumerate(order):
        place[row] = position
    parts, start = {}, 0
    for name, split in dataset.items():
        parts[name] = _rows_of(whole, place[start:start + len(split)])
        start += len(split)
    return DatasetDict(parts)


def _rows_of(whole: Dataset, rows: list[int]) -> Dataset:
    """`whole.select(rows)` always as an indices mapping over `whole`'s table, as `whole_table_keys` reads a split:
    datasets slices the table instead where the rows run in order (a fold's test group, listed together), and the
    slice is a table of its own, decoded and cached by itself."""
    import pyarrow as pa
    from datasets.table import InMemoryTable

    indices = InMemoryTable.from_pydict({"indices": pa.array(rows, type=pa.uint64())})
    fingerprint = hashlib.sha256(json.dumps([whole._fingerprint, rows]).encode()).hexdigest()[:32]
    return Dataset(whole.data, info=whole.info.copy(), split=whole.split, indices_table=indices,
                   fingerprint=fingerprint)


def label_column_of(columns: Sequence[str], label_column: str) -> str:
    """The default `label` column, or `labels` (any letter case) when the data has that instead (the usual name for
    lists)."""
    if label_column == "label" and not any(name.casefold() == "label" for name in columns):
        plural = [name for name in columns if name.casefold() == "labels"]  # `Labels` too, as `column_named` reads
        return "labels" if "labels" in columns else plural[0] if len(plural) == 1 else label_column
    return label_column


def _require_columns(table: Dataset, columns: Sequence[str], source: str) -> None:
    absent = [c for c in columns if c not in table.column_names]
    if absent:
        raise DataError(f"{source}: missing column(s) {absent}; available columns: {table.column_names} "
                        "(name them with --audio_column_name / --label_column_name)")
