"""Loading labelled audio from the three layouts users have, into one `DatasetDict` shape.

Whatever the source, the result has an undecoded `audio` column (`Audio(decode=False)`, so a bad file
fails later with its name rather than here) and, once `encode_labels` has run, an integer `label`
column (`ClassLabel`) whose names are the same in every split -- or, for multi-label data, a list of
them per clip (`List(ClassLabel)`):

- an *audiofolder*: `root/<label>/*.wav|flac|mp3|ogg` (optionally under `train/`, `test/` ... folders);
- CSV or JSONL manifests with a path and a label column (paths relative to the manifest's folder);
- any `datasets` dataset with an audio and a label column: a Hub name, or a folder saved with
  `save_to_disk`.

Multi-label data (`encode_labels(..., multi_label=True)`) gives each clip a list of labels: a
`;`-separated string in a CSV/TSV manifest (`dog;siren`), a JSON list or such a string in a JSONL
manifest, a list column (`List`/`Sequence` of strings or of `ClassLabel`) in a datasets dataset. An
audiofolder's folder names stay single-label (each clip gets a one-label list); a manifest is the way
to give clips several labels. The label column is `label`, or `labels` when the data has no `label`
column (or whatever `label_column` names). An empty list (an empty CSV cell, `[]` in JSONL) is a clip with no
event: an all-zero target, which detection data needs (background-only clips). A split in which
*no* clip has a label is an error (almost surely the wrong column).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Optional, Sequence

from datasets import Audio, ClassLabel, Dataset, DatasetDict, LargeList, List, load_dataset, load_from_disk

from hfspeech.data.audio import describe_source
from hfspeech.errors import HfspeechError

LABEL_SEPARATOR = ";"
SPLIT_ALIASES = {"valid": "validation", "val": "validation", "dev": "validation", "eval": "validation"}
AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aiff", ".aif"}
MANIFEST_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}


def find_audio_files(folder: str | Path) -> list[Path]:
    """Every audio file under `folder`, sorted (labelled folders, calibration and evaluation clips)."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)


class DataError(HfspeechError, ValueError):
    """A data set that cannot be used as given (missing column, unknown label, no files ...)."""


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
) -> DatasetDict:
    """Load exactly one of: an audiofolder (`data_dir`), manifests (`*_file`), a datasets dataset."""
    given = [bool(data_dir), bool(train_file or validation_file or test_file), bool(dataset_name)]
    if sum(given) != 1:
        raise DataError("give exactly one data source: --data_dir, --train_file/--validation_file/--test_file, or "
                        "--dataset_name")
    if data_dir:
        dataset = _load_audiofolder(data_dir, cache_dir)
    elif dataset_name:
        dataset = _load_datasets_dataset(dataset_name, dataset_config_name, audio_column, label_column, cache_dir)
    else:
        files = {"train": train_file, "validation": validation_file, "test": test_file}
        dataset = DatasetDict(
            {split: _load_manifest(path, path_column, label_column, cache_dir) for split, path in files.items() if path}
        )
    return DatasetDict({SPLIT_ALIASES.get(name, name): split for name, split in dataset.items()})


def _load_audiofolder(data_dir: str, cache_dir: Optional[str]) -> DatasetDict:
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{data_dir}: audio folder not found")
    loose = sorted(p.name for p in root.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
    if loose:
        raise DataError(
            f"{data_dir}: {len(loose)} audio file(s) directly in the folder have no label (e.g. {loose[0]}); "
            "put each class's files in a folder named after the label (root/<label>/*.wav)"
        )
    # drop_labels=False: the parent folder is the label even when there is only one class folder
    # (datasets would otherwise drop it), as when evaluating on clips of a single class.
    data_files = _audiofolder_data_files(root)
    if data_files is None:  # a layout datasets reads in its own way (metadata.csv/jsonl ...): let it
        dataset = load_dataset("audiofolder", data_dir=str(root), cache_dir=cache_dir, drop_labels=False)
    else:
        dataset = load_dataset("audiofolder", data_files=data_files, cache_dir=cache_dir, drop_labels=False)
    for name, split in dataset.items():
        if len(split) == 0:
            raise DataError(f"{data_dir}: no audio files found for split '{name}'")
    return dataset.cast_column("audio", Audio(decode=False))


# How `datasets` finds the splits of a `data_dir` (datasets.data_files.SPLIT_KEYWORDS and the default
# patterns built from them): a folder or file name with one of these words between separators `-._ 0-9`.
_SPLIT_KEYWORDS = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "dev", "val"),
    "test": ("test", "testing", "eval", "evaluation"),
}
_SPLIT_LIKE_NAME = re.compile(
    r"(?:^|[-._ 0-9])(?:" + "|".join(k for ks in _SPLIT_KEYWORDS.values() for k in ks) + r")(?:[-._ 0-9]|$)",
    re.IGNORECASE,
)
# What else changes what `datasets` reads from a folder: metadata files (their columns replace the
# folder labels), archives (extracted), sharded `data/<split>-00000-of-00001.*` files, `*.eval` logs,
# a dataset card with configs, and glob characters in a path (the files are passed as patterns).
_METADATA_NAMES = {"metadata.csv", "metadata.jsonl", "metadata.parquet"}
_SPECIAL_SUFFIXES = {".zip", ".eval"}
_SHARD_NAME = re.compile(r"-[0-9]{5}-of-[0-9]{5}")
_GLOB_CHARACTERS = set("*?[]{}")


def _audiofolder_data_files(root: Path) -> Optional[dict[str, list[str]]]:
    """Each split's audio files, exactly as `load_dataset("audiofolder", data_dir=root)` finds them.

    Given a `data_dir`, datasets resolves some 60 glob patterns, each walking the whole tree, to find
    the splits -- seconds for a few thousand files; listing the tree once and passing the files
    explicitly gives the same dataset in a fraction of that. Only the plain layouts are handled:
    `root/<label>/...` (one `train` split) and `root/<split>/<label>/...` with every top-level folder
    named exactly like a split (`train`, `validation`, `valid`, `dev`, `test`, `eval` ...). For
    anything else -- a metadata file (datasets' metadata handling), an archive, a split-like word in
    another name, a file type the audiofolder builder treats differently than `AUDIO_EXTENSIONS`,
    symbolic links to folders -- this returns None and the caller lets datasets find the files.
    """
    from datasets.packaged_modules.audiofolder.audiofolder import AudioFolder

    builder_extensions = set(AudioFolder.EXTENSIONS)
    base = root.resolve()
    if (base / "README.md").exists() or (base / ".huggingface.yaml").exists():
        return None
    files = []  # (parts relative to root, absolute path); hidden entries and `__*` folders skipped, as datasets does
    pending = [((), str(base))]
    while pending:
        parts, folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if not entry.name.startswith("__"):
                        pending.append(((*parts, entry.name), entry.path))
                elif entry.is_symlink():
                    return None
                else:
                    files.append(((*parts, entry.name), entry.path))
    audio = []
    for parts, full in files:
        name = parts[-1]
        stem, suffix = os.path.splitext(name)
        if (name in _METADATA_NAMES or suffix.lower() in _SPECIAL_SUFFIXES or _SHARD_NAME.search(name)
                or _GLOB_CHARACTERS & set(full) or "::" in full
                or os.path.splitext(stem)[1].lower() in builder_extensions
                or any(_SPLIT_LIKE_NAME.search(part) for part in parts[1:] or parts)):
            return None
        if suffix in AUDIO_EXTENSIONS and suffix in builder_extensions:
            audio.append((parts, full))
        elif suffix.lower() in AUDIO_EXTENSIONS or suffix.lower() in builder_extensions:
            return None  # `.WAV`, `.m4a`, `.mp4` ...: the builder and find_audio_files disagree on these
    top_folders = {parts[0] for parts, _ in files if len(parts) > 1}
    if not audio:
        return None
    if not any(_SPLIT_LIKE_NAME.search(folder) for folder in top_folders):
        return {"train": sorted(full for _, full in audio)}
    split_of = {keyword: split for split, keywords in _SPLIT_KEYWORDS.items() for keyword in keywords}
    with_audio = {parts[0] for parts, _ in audio}
    if not all(folder in split_of and folder in with_audio for folder in top_folders):
        return None
    data_files = {}
    for split, keywords in _SPLIT_KEYWORDS.items():  # datasets' split order; its files keyword by keyword
        paths = [full for keyword in keywords for full in sorted(f for parts, f in audio if parts[0] == keyword)]
        if paths:
            data_files[split] = paths
    return data_files


def _load_datasets_dataset(
    name: str, config_name: Optional[str], audio_column: str, label_column: str, cache_dir: Optional[str]
) -> DatasetDict:
    saved = Path(name)
    if saved.is_dir() and ((saved / "dataset_dict.json").exists() or (saved / "state.json").exists()):
        loaded = load_from_disk(name)
    else:
        loaded = load_dataset(name, config_name, cache_dir=cache_dir)
    dataset = loaded if isinstance(loaded, DatasetDict) else DatasetDict({"train": loaded})
    label_column = _label_column(next(iter(dataset.values())).column_names, label_column)
    for split_name, split in dataset.items():
        _require_columns(split, [audio_column, label_column], f"{name} (split '{split_name}')")
    if audio_column != "audio":
        dataset = dataset.rename_column(audio_column, "audio")
    if label_column != "label":
        dataset = dataset.rename_column(label_column, "label")
    extra = [c for c in next(iter(dataset.values())).column_names if c not in ("audio", "label")]
    return dataset.remove_columns(extra).cast_column("audio", Audio(decode=False))


def _load_manifest(path: str, path_column: str, label_column: str, cache_dir: Optional[str]) -> Dataset:
    manifest = Path(path)
    if not manifest.is_file():
        raise DataError(f"{path}: manifest file not found")
    builder = MANIFEST_FORMATS.get(manifest.suffix.lower())
    if builder is None:
        raise DataError(f"{path}: unknown manifest format '{manifest.suffix}' (use .csv, .tsv, .json or .jsonl)")
    options = {"delimiter": "\t"} if manifest.suffix.lower() == ".tsv" else {}
    try:
        table = load_dataset(builder, data_files=str(manifest), split="train", cache_dir=cache_dir, **options)
    except Exception as error:
        raise DataError(f"{path}: cannot be read as {builder.upper()}: {error}") from error
    if len(table) == 0:
        raise DataError(f"{path}: manifest has no rows")
    label_column = _label_column(table.column_names, label_column)
    _require_columns(table, [path_column, label_column], path)

    base = manifest.resolve().parent

    def resolve(row):
        audio_path = str(row[path_column]) if row[path_column] is not None else ""
        full = audio_path if os.path.isabs(audio_path) else str(base / audio_path)
        return {"audio": full, "label": row[label_column]}

    table = table.map(resolve, remove_columns=table.column_names, desc=f"reading {manifest.name}")
    missing = [p for p in table["audio"] if not os.path.isfile(p)]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataError(f"{path}: {len(missing)} audio file(s) listed in the manifest do not exist: {shown}")
    return table.cast_column("audio", Audio(decode=False))


def _label_column(columns: Sequence[str], label_column: str) -> str:
    """The default `label` column, or `labels` when the data has that instead (the usual name for lists)."""
    if label_column == "label" and "label" not in columns and "labels" in columns:
        return "labels"
    return label_column


def _require_columns(table: Dataset, columns: Sequence[str], source: str) -> None:
    absent = [c for c in columns if c not in table.column_names]
    if absent:
        raise DataError(f"{source}: missing column(s) {absent}; available columns: {table.column_names}")


def encode_labels(dataset: DatasetDict, label_names: Optional[Sequence[str]] = None, multi_label: bool = False,
                  separator: str = LABEL_SEPARATOR) -> DatasetDict:
    """Give every split the same integer `ClassLabel` column (`List(ClassLabel)` when `multi_label`).

    Without `label_names` the classes are the sorted labels of the training split (or of all splits
    when there is none). A label outside those classes -- in another split, or in data for a model
    trained on other labels -- raises a `DataError` naming the label and a file that has it.
    `separator` splits a multi-label string such as `dog;siren`.
    """
    labels = {name: (_label_lists(split, separator, name) if multi_label else _label_strings(split))
              for name, split in dataset.items()}
    if label_names is None:
        source = ["train"] if "train" in dataset else list(dataset)
        label_names = sorted({s for name in source for s in _flatten(labels[name], multi_label)})
    label_names = [str(n) for n in label_names]
    index = {name: i for i, name in enumerate(label_names)}
    class_label = ClassLabel(names=label_names)

    encoded = {}
    for split_name, split in dataset.items():
        strings = labels[split_name]
        unknown = sorted({s for s in _flatten(strings, multi_label) if s not in index})
        if unknown:
            row = next(i for i, s in enumerate(strings) if unknown[0] in (s if multi_label else [s]))
            where = describe_source(split.select([row])[0]["audio"])
            raise DataError(
                f"{where}: unknown label '{unknown[0]}' in split '{split_name}' "
                f"({len(unknown)} unknown label(s): {unknown[:10]}); known labels: {label_names}"
            )
        if multi_label:
            ids, feature = [[index[s] for s in clip] for clip in strings], List(class_label)
        else:
            ids, feature = [index[s] for s in strings], class_label
        split = split.remove_columns("label").add_column("label", ids)
        encoded[split_name] = split.cast_column("label", feature)
    return DatasetDict(encoded)


def is_multi_label(split: Dataset) -> bool:
    """Whether an encoded split's labels are lists (`List(ClassLabel)`) rather than one `ClassLabel`."""
    return isinstance(split.features["label"], (List, LargeList))


def label_names_of(split: Dataset) -> list[str]:
    """The class names of an encoded split, single- or multi-label."""
    feature = split.features["label"]
    return list((feature.feature if is_multi_label(split) else feature).names)


def _flatten(labels: list, multi_label: bool):
    return (s for clip in labels for s in clip) if multi_label else labels


def _label_strings(split: Dataset) -> list[str]:
    """Labels as strings: ClassLabel ids are mapped to their names, anything else is str()-ed."""
    feature = split.features["label"]
    values = split["label"]
    if isinstance(feature, ClassLabel):
        return [feature.int2str(v) for v in values]
    if is_multi_label(split) or any(isinstance(v, (list, tuple)) for v in values):
        raise DataError(f"{describe_source(split.select([0])[0]['audio'])}: the labels are lists (multi-label data); "
                        "train with --problem_type multi_label_classification")
    if any(v is None or (isinstance(v, str) and not v.strip()) for v in values):
        row = next(i for i, v in enumerate(values) if v is None or (isinstance(v, str) and not v.strip()))
        raise DataError(f"{describe_source(split.select([row])[0]['audio'])}: empty label")
    return [str(v) for v in values]


def _label_lists(split: Dataset, separator: str, split_name: str) -> list[list[str]]:
    """Each clip's labels as a list of strings, duplicates dropped, from any of the accepted forms."""
    feature = split.features["label"]
    values = split["label"]
    if isinstance(feature, ClassLabel):  # an audiofolder: one label per clip
        lists = [[feature.int2str(v)] for v in values]
    elif is_multi_label(split) and isinstance(getattr(feature, "feature", None), ClassLabel):
        lists = [[feature.feature.int2str(v) for v in clip] for clip in values]
    else:
        lists = [_parse_label_list(v, separator) for v in values]
    lists = [list(dict.fromkeys(clip)) for clip in lists]
    if lists and not any(lists):
        raise DataError(f"{describe_source(split.select([0])[0]['audio'])}: no clip in split '{split_name}' has a "
                        f"label (empty label column? multi-label strings are split at {separator!r})")
    return lists


def _parse_label_list(value, separator: str) -> list[str]:
    """`None`/`""`/`[]` -> [] (a clip with no event); `"a;b"` -> ["a", "b"]; `["a", "b"]` as is."""
    if value is None or (isinstance(value, float) and math.isnan(value)):  # an empty CSV cell
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(separator) if part.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]
    return [str(value)]
