"""Loading labelled audio from the three layouts users have, into one `DatasetDict` shape.

Whatever the source, the result has an undecoded `audio` column (`Audio(decode=False)`, so a bad file
fails later with its name rather than here) and, once `encode_labels` has run, an integer `label`
column (`ClassLabel`) whose names are the same in every split -- or, for multi-label data, a list of
them per clip (`List(ClassLabel)`):

- an *audiofolder*: `root/<label>/*.wav|flac|mp3|ogg|m4a ...` (optionally under `train/`, `test/` ...
  folders; nested folders with `label_depth`), listed by `hfspeech.data.folders` so that every file is
  used or reported;
- CSV or JSONL manifests with a path and a label column (paths relative to the manifest's folder), read
  by `hfspeech.data.manifests` with every label a string exactly as written (`0012` stays `0012`);
- any `datasets` dataset with an audio and a label column: a Hub name, or a folder saved with
  `save_to_disk`; which of its splits are train, validation and test is `data.split_names`' choice
  (`--train_split_name` ...), clips without a file name are named by row (`data.clip_names`), and its audio
  and label columns are read by `data.dataset_columns` (paths as text keyed by each file's stat).

Label lists for multi-label data, and the encoding of labels into class ids, are `hfspeech.data.labels`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from pathlib import Path
from typing import Callable, Optional

from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features, Value, concatenate_datasets, load_from_disk

from hfspeech.data.cache_users import hold_cache_folders, leave_users_folder
from hfspeech.data.columns import column_values
from hfspeech.data.dataset_columns import audio_and_label, file_stat, keyed_by_stats, label_column_of
from hfspeech.data.folders import list_audio_folder, refuse_guessed_labels, uses_datasets_layout, walk_audio_files
from hfspeech.data.manifest_cells import check_label_kinds, refuse_text_not_utf8
from hfspeech.data.manifests import (absolute_folder, absolute_manifest_folder, column_named, listed_files,
                                     read_manifest)
from hfspeech.data.metadata_files import read_by_audiofolder
from hfspeech.data.prepare import DataReport, cache_folder_problem
from hfspeech.data.split_names import (ROLE_FLAGS, SPLIT_ALIASES, choose_splits, given_split_names, is_slice,
                                       refuse_without_dataset, slice_bases, slice_rows, split_notes)
from hfspeech.data.whole_folders import save_whole
from hfspeech.errors import DataError, first_few, writing_to
from hfspeech.output_folders import remove_leftover_scratch

logger = logging.getLogger("hfspeech.data")


def load_audio_dataset(
    data_dir: Optional[str] = None,
    train_file: Optional[str] = None,
    validation_file: Optional[str] = None,
    test_file: Optional[str] = None,
    dataset_name: Optional[str] = None,
    dataset_config_name: Optional[str] = None,
    audio_column: str = "audio",
    label_column: str = "label",
    path_column: str = "path",
    cache_dir: Optional[str] = None,
    label_depth: Optional[int] = None,
    report: Optional[DataReport] = None,
    train_split_name: str = "train",
    eval_split_name: str = "validation",
    test_split_name: str = "test",
    choose_split: Optional[Callable[[list[str]], str]] = None,
) -> DatasetDict:
    """Load exactly one of: an audiofolder (`data_dir`), manifests (`*_file`), a datasets dataset.

    `label_depth`: for an audio folder with nested folders, which folder below the root (or split folder)
    is the label (`hfspeech.data.folders`). `report`: filled with the files found and those ignored.
    `*_split_name`: which splits of a datasets dataset are train, validation and test (`data.split_names`);
    the others are not read. `choose_split`: instead, the one split of a datasets dataset it picks from the
    split names, under its own name (`hfspeech evaluate --split dev`)."""
    given = [bool(data_dir), bool(train_file or validation_file or test_file), bool(dataset_name)]
    if sum(given) != 1:
        raise DataError("give exactly one data source: --data_dir, --train_file/--validation_file/--test_file, or "
                        "--dataset_name")
    split_names = given_split_names(train_split_name, eval_split_name, test_split_name)
    refuse_without_dataset(split_names, dataset_name)
    if data_dir:
        dataset = _load_audiofolder(data_dir, cache_dir, label_depth, report, label_column)
        return DatasetDict({SPLIT_ALIASES.get(name, name): split for name, split in dataset.items()})
    if not dataset_name:
        files = {"train": train_file, "validation": validation_file, "test": test_file}
        dataset = DatasetDict({split: _load_manifest(path, path_column, label_column)
                               for split, path in files.items() if path})
    else:
        dataset = _load_datasets_dataset(dataset_name, dataset_config_name, cache_dir)
        if choose_split is None:
            return _by_role(dataset, split_names, dataset_name, audio_column, label_column, report)
    if report is not None:
        report.add_listing({name: len(split) for name, split in dataset.items()}, [], [])
    if not dataset_name:
        return dataset
    chosen = choose_split(list(dataset))
    return audio_and_label(DatasetDict({chosen: dataset[chosen]}), dataset_name, audio_column, label_column)


def _by_role(dataset: DatasetDict, given: dict[str, str], name: str, audio_column: str, label_column: str,
             report: Optional[DataReport]) -> DatasetDict:
    """The dataset's train, validation and test splits (`data.split_names.choose_splits`) under those names, or
    the slices of them the flags give (`train[:80%]`); the splits left out are not read (nor checked)."""
    chosen = choose_splits(list(dataset), given, name)
    read = {split: dataset[split] for role_split in chosen.values() for split in slice_bases(role_split)}
    used = audio_and_label(DatasetDict(read), name, audio_column, label_column)  # clips named by their own split
    roles = DatasetDict({role: _sliced(used, split, ROLE_FLAGS[role]) for role, split in chosen.items()})
    if report is not None:
        report.add_listing({role: len(rows) for role, rows in roles.items()}, [],
                           split_notes(chosen, given, {split: len(rows) for split, rows in dataset.items()}, name))
    return roles


def _sliced(splits: DatasetDict, name: str, flag: str) -> Dataset:
    """The split `name`, or datasets' slice of the splits it names (`train[:80%]`, `train+validation`): views of
    their rows, nothing copied or written."""
    if not is_slice(name):
        return splits[name]
    sizes = {split: len(rows) for split, rows in splits.items()}
    parts = [splits[split].select(range(start, end)) for split, start, end in slice_rows(name, sizes, flag)]
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def _load_audiofolder(data_dir: str, cache_dir: Optional[str], label_depth: Optional[int],
                      report: Optional[DataReport], label_column: str = "label") -> DatasetDict:
    """The folder listed by `hfspeech.data.folders` (every file used or reported); a folder with a metadata
    file or a dataset card with configs is read by datasets' audiofolder builder, and checked against the
    listing so that no file it leaves out goes unreported. Files are listed by absolute path (`absolute_folder`):
    the cache key is made of them, so every spelling of the folder shares one decoded cache."""
    root = absolute_folder(data_dir)
    if not root.is_dir():
        raise DataError(f"{data_dir}: " + ("a file, not an audio folder" if root.exists() else "audio folder not found"))
    if uses_datasets_layout(root):
        audio, ignored = walk_audio_files(root)  # lists each metadata.csv, checked before datasets reads it
        refuse_guessed_labels(entry["path"] for entry in ignored)
        dataset = read_by_audiofolder(root, ignored, cache_dir)  # cached by its metadata files' bytes
        hold_cache_folders(dataset)  # before the maps and splits that write beside its files (`data.cache_users`)
        used = {os.path.realpath(a["path"]) for split in dataset.values()
                for a in column_values(split.cast_column("audio", Audio(decode=False)), "audio")}
        ignored += [{"path": path, "reason": "not read by datasets' audiofolder builder (metadata layout)"}
                    for _, path in audio if os.path.realpath(path) not in used]
        if report is not None:
            report.add_listing({name: len(split) for name, split in dataset.items()}, ignored,
                               ["read by datasets' audiofolder builder (the folder has a metadata file or configs)"])
        for name, split in dataset.items():
            if len(split) == 0:
                raise DataError(f"{data_dir}: no audio files found for split '{name}'")
        # the metadata's label column (--label_column_name), or one line naming the columns it has (a KeyError)
        return audio_and_label(dataset, data_dir, "audio", label_column)
    listing = list_audio_folder(root, label_depth)
    if report is not None:
        report.add_listing({name: len(files) for name, files in listing.splits.items()}, listing.ignored,
                           listing.notes)
    return _on_disk(listing, cache_dir)


def _on_disk(listing, cache_dir: Optional[str]) -> DatasetDict:
    """The listing as a DatasetDict saved in the datasets cache, keyed (folder and fingerprint) by every file's
    path, label and `file_stat`: a dataset backed by files, so that `prepare_dataset`'s decoded audio is cached too
    (a second run over the same files decodes nothing), as with datasets' own audiofolder loading."""
    import hashlib

    import datasets

    key = hashlib.sha256(json.dumps({split: [(path, label, *file_stat(path)) for path, label in files]
                                     for split, files in listing.splits.items()}).encode()).hexdigest()[:32]
    folder = Path(cache_dir or datasets.config.HF_DATASETS_CACHE) / "hfspeech-audiofolder" / key
    setting = "--cache_dir" if cache_dir else "HF_DATASETS_CACHE"  # what chose it (evaluate has no --cache_dir)
    looked_at = time.time()
    loaded = _readable_listing(folder)
    if loaded is not None:  # a killed run's `.KEY-partial-*` stayed for good: only `save_whole` swept, run no more
        remove_leftover_scratch(folder)  # once another run had saved the listing (a live run's, locked, is kept)
    else:
        if problem := cache_folder_problem(folder.parent):  # not a traceback from deep inside save_to_disk
            raise DataError(f"{folder.parent}: cannot write the audio folder's listing to the datasets cache "
                            f"({problem}); set {setting} to a folder you can write")
        # Paths are saved as plain strings: saving an `Audio` column would copy every file into the cache.
        names = ClassLabel(names=sorted({label for files in listing.splits.values() for _, label in files}))
        features = Features({"audio": Value("string"), "label": names})
        dataset = DatasetDict({split: Dataset.from_dict({"audio": [path for path, _ in files],
                                                         "label": [label for _, label in files]}, features=features)
                               for split, files in listing.splits.items()})
        for split_name, split in dataset.items():  # saved with it: see `keyed_by_stats`
            split._fingerprint = f"{key}-{split_name}"
        _save_whole(dataset, folder, setting, looked_at)
        loaded = load_from_disk(str(folder))
    hold_cache_folders(loaded)  # before the maps and splits that write beside its files (`data.cache_users`)
    return loaded.cast_column("audio", Audio(decode=False))


def _readable_listing(folder: Path) -> Optional[DatasetDict]:
    """The cached listing, or None when there is none or it is damaged: an entry with a file gone (a /tmp cleaner),
    cut or garbled was a traceback on every run; now it is saved again (one warning), as `training.teacher_cache`
    does. Not for an OS error of the moment (pyarrow's own carry no errno)."""
    if not (folder / "dataset_dict.json").is_file():
        return None
    try:
        return load_from_disk(str(folder))
    except Exception as error:  # a file gone, cut or garbled: datasets', Arrow's and JSON's errors are of many kinds
        if isinstance(error, OSError) and error.errno not in (None, errno.ENOENT):  # EIO rebuilt it, decoded audio
            raise  # beside it deleted (R2)
        logger.warning("data: %s: cached listing cannot be read (%s: %s); listing it again", folder,
                       type(error).__name__, (str(error).splitlines() or [""])[0])
        return None


def _save_whole(dataset: DatasetDict, folder: Path, setting: str = "HF_DATASETS_CACHE",
                looked_at: Optional[float] = None) -> None:
    """Saved whole (`data.whole_folders`): a killed run or a parallel process never leaves half a dataset, and a
    full or read-only disk leaves nothing behind and is one line naming the cache, not a traceback from datasets.
    Any other `OSError` is left as it is, not called a lack of room. `setting`: what chose the folder, the one to
    change (`HF_DATASETS_CACHE`, or `--cache_dir` where given); `looked_at`: when the folder was found missing or
    damaged (a damaged one saved before it is replaced)."""
    with writing_to(folder.parent, f"make room, or set {setting} to another folder"):
        save_whole(dataset, folder, looked_at)


def is_saved_dataset(name: Optional[str]) -> bool:
    """Whether `--dataset_name` is a folder written by `save_to_disk` (rather than a Hub name)."""
    saved = Path(name or "")
    return bool(name) and saved.is_dir() and ((saved / "dataset_dict.json").exists() or (saved / "state.json").exists())


def local_parquet_rows(stream) -> Optional[int]:
    """The rows of a streamed split read from local Parquet files, from each file's footer (no row read), else None
    (a Hub stream, CSV, JSON, Arrow). The files are the stream's own (datasets' `ArrowExamplesIterable`), so the
    count is of the files it reads."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = (getattr(getattr(stream, "_ex_iterable", None), "kwargs", None) or {}).get("files")
    if not files or not all(isinstance(f, str) and f.endswith(".parquet") and os.path.isfile(f) for f in files):
        return None
    try:
        return sum(pq.ParquetFile(path).metadata.num_rows for path in files)
    except (OSError, pa.ArrowException):  # not Parquet after all: left to the stream to say
        return None


def _load_datasets_dataset(name: str, config_name: Optional[str], cache_dir: Optional[str]) -> DatasetDict:
    """Every split of a `save_to_disk` folder, a Hub dataset or a local clone of one, under its own name. The
    user's `save_to_disk` folder is theirs: no lock file there, no `tmp*` file removed (their own scripts map
    into it without hfspeech's lock); a Hub dataset's folder in the datasets cache is held (`data.cache_users`)."""
    if is_saved_dataset(name):
        if config_name:  # it would be recorded in run_inputs.json as if it had chosen something
            raise DataError(f"--dataset_config_name {config_name}: {name} is a folder written by save_to_disk, "
                            "which has no configurations; leave the flag out")
        loaded = load_from_disk(name)
        leave_users_folder(loaded)
    else:  # one-line errors for a missing folder, an unreachable Hub, a wrong configuration (data.dataset_opening)
        from hfspeech.data.dataset_opening import open_datasets_dataset

        loaded = open_datasets_dataset(name, config_name, cache_dir=cache_dir)
        hold_cache_folders(loaded)  # before the maps and splits that write beside its files (`data.cache_users`)
    return loaded if isinstance(loaded, DatasetDict) else DatasetDict({"train": loaded})


def _load_manifest(path: str, path_column: str, label_column: str) -> Dataset:
    """A CSV/TSV/JSONL manifest (`hfspeech.data.manifests`: every value a string as written), paths resolved
    against the manifest's folder by predict's rule (`manifest_folder`: a linked manifest's target's folder, a
    linked folder kept as named), made absolute; files that do not exist are an error naming them."""
    rows, columns = read_manifest(path)
    path_column = column_named(path, columns, path_column)  # Excel's `Path` for `path`, where only one fits
    label_column = column_named(path, columns, label_column_of(columns, label_column))
    if path_column not in columns or label_column not in columns:
        absent = [c for c in (path_column, label_column) if c not in columns]
        raise DataError(f"{path}: missing column(s) {absent}; available columns: {columns} (name them with "
                        "--path_column_name / --label_column_name)")
    for number, row in enumerate(rows, start=1):  # data rows from 1, as `listed_files` and predict count them
        if not str(row.get(path_column) or "").strip():
            raise DataError(f"{path}: row {number} has an empty {path_column!r} cell")
    refuse_text_not_utf8(path, rows, path_column)  # Arrow's traceback; under LC_ALL=C, "do not exist"
    files = listed_files(path, [str(row.get(path_column)) for row in rows], absolute_manifest_folder(path))
    audio, labels, missing = [], [], []
    for row, full in zip(rows, files):
        (missing if not os.path.lexists(full) else audio).append(full)
        label = row.get(label_column)  # JSON numbers become text, so that one column holds one type
        labels.append([str(v) for v in label] if isinstance(label, list) else None if label is None else str(label))
    check_label_kinds(path, label_column, [row.get(label_column) for row in rows],
                      [str(row.get(path_column)) for row in rows])
    if missing:
        shown = first_few(missing, limit=5)
        hint = " (Windows paths: give them relative to the manifest's folder)" if any(":\\" in m for m in missing) else ""
        raise DataError(f"{path}: {len(missing)} audio file(s) listed in the manifest do not exist: {shown}{hint}")
    dataset = keyed_by_stats(Dataset.from_dict({"audio": audio, "label": labels}), [file_stat(p) for p in audio])
    return dataset.cast_column("audio", Audio(decode=False))

