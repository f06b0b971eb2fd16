"""Loading labelled audio from the three layouts users have, into one `DatasetDict` shape.

Whatever the source, the result has an undecoded `audio` column (`Audio(decode=False)`, so a bad file
fails later with its name rather than here) and an integer `label` column (`ClassLabel`) whose names
are the same in every split:

- an *audiofolder*: `root/<label>/*.wav|flac|mp3|ogg` (optionally under `train/`, `test/` ... folders);
- CSV or JSONL manifests with a path and a label column (paths relative to the manifest's folder);
- any `datasets` dataset with an audio and a label column: a Hub name, or a folder saved with
  `save_to_disk`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

from datasets import Audio, ClassLabel, Dataset, DatasetDict, load_dataset, load_from_disk

from hfspeech.data.audio import describe_source

SPLIT_ALIASES = {"valid": "validation", "val": "validation", "dev": "validation", "eval": "validation"}
AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aiff", ".aif"}
MANIFEST_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}


def find_audio_files(folder: str | Path) -> list[Path]:
    """Every audio file under `folder`, sorted (labelled folders, calibration and evaluation clips)."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)


class DataError(ValueError):
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
        raise DataError("give exactly one data source: data_dir, train_file/validation_file/test_file, or dataset_name")
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
    dataset = load_dataset("audiofolder", data_dir=str(root), cache_dir=cache_dir, drop_labels=False)
    for name, split in dataset.items():
        if len(split) == 0:
            raise DataError(f"{data_dir}: no audio files found for split '{name}'")
    return dataset.cast_column("audio", Audio(decode=False))


def _load_datasets_dataset(
    name: str, config_name: Optional[str], audio_column: str, label_column: str, cache_dir: Optional[str]
) -> DatasetDict:
    saved = Path(name)
    if saved.is_dir() and ((saved / "dataset_dict.json").exists() or (saved / "state.json").exists()):
        loaded = load_from_disk(name)
    else:
        loaded = load_dataset(name, config_name, cache_dir=cache_dir)
    dataset = loaded if isinstance(loaded, DatasetDict) else DatasetDict({"train": loaded})
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


def _require_columns(table: Dataset, columns: Sequence[str], source: str) -> None:
    absent = [c for c in columns if c not in table.column_names]
    if absent:
        raise DataError(f"{source}: missing column(s) {absent}; available columns: {table.column_names}")


def encode_labels(dataset: DatasetDict, label_names: Optional[Sequence[str]] = None) -> DatasetDict:
    """Give every split the same integer `ClassLabel` column.

    Without `label_names` the classes are the sorted labels of the training split (or of all splits
    when there is none). A label outside those classes -- in another split, or in data for a model
    trained on other labels -- raises a `DataError` naming the label and a file that has it.
    """
    if label_names is None:
        reference = dataset["train"] if "train" in dataset else None
        source = [reference] if reference is not None else list(dataset.values())
        names = set()
        for split in source:
            names.update(_label_strings(split))
        label_names = sorted(names)
    label_names = [str(n) for n in label_names]
    index = {name: i for i, name in enumerate(label_names)}
    class_label = ClassLabel(names=label_names)

    encoded = {}
    for split_name, split in dataset.items():
        strings = _label_strings(split)
        unknown = sorted({s for s in strings if s not in index})
        if unknown:
            row = strings.index(unknown[0])
            where = describe_source(split.select([row])[0]["audio"])
            raise DataError(
                f"{where}: unknown label '{unknown[0]}' in split '{split_name}' "
                f"({len(unknown)} unknown label(s): {unknown[:10]}); known labels: {label_names}"
            )
        split = split.remove_columns("label").add_column("label", [index[s] for s in strings])
        encoded[split_name] = split.cast_column("label", class_label)
    return DatasetDict(encoded)


def _label_strings(split: Dataset) -> list[str]:
    """Labels as strings: ClassLabel ids are mapped to their names, anything else is str()-ed."""
    feature = split.features["label"]
    values = split["label"]
    if isinstance(feature, ClassLabel):
        return [feature.int2str(v) for v in values]
    if any(v is None or (isinstance(v, str) and not v.strip()) for v in values):
        row = next(i for i, v in enumerate(values) if v is None or (isinstance(v, str) and not v.strip()))
        raise DataError(f"{describe_source(split.select([row])[0]['audio'])}: empty label")
    return [str(v) for v in values]
