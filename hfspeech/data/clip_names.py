"""Names for clips that have no file name: audio a dataset holds as bytes (built from arrays), or an empty
audio cell. They are named by dataset, split and row -- `<audio bytes without a file name: DATASET (split
'train') row 4>` -- in errors and in data_report.json, map-style (`name_pathless_audio`, when a dataset is
loaded) and streamed (`unnamed_audio`, per row of the stream) alike; `data.audio.describe_source` names the
rest by their path. A bad clip held as bytes under a stored file name (every row of a Hub dataset may have the same
one: `audio.flac`) is named by its split and row beside it (`bytes_clip_name`: `audio.flac (train row 7)`) by
`data.decode_errors`.

Each split named here is remembered by the folder of its Arrow files (`loaded_source`): the dataset it was loaded
from, as `--dataset_name` gave it (a folder made absolute). `data.decoded_caches` keys the decodings of a split held
as bytes by it: nothing in the split names its dataset across the dataset's versions (datasets names a local folder
by its last name only, `/a/speech` and `/b/speech` alike, and each version by a hash of its files).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

from datasets import Dataset

# {real path of the folder of a loaded split's Arrow files: the dataset loaded}; each version of a dataset (and each
# dataset) has a folder of its own in the datasets cache (its splits share it), a `save_to_disk` folder is its own
_loaded_from: dict[str, str] = {}
SOURCE_FORMAT = re.compile(r"(?P<name>.+) \(split '(?P<split>.+)'\)")  # `data.dataset_columns`' `source`


def name_pathless_audio(split: Dataset, source: str) -> Dataset:
    """Audio without a file name (bytes of a dataset built from arrays, or an empty cell) named by dataset,
    split and row, as `--streaming` names it (`unnamed_audio`): every such clip was `<audio bytes without a
    path>` in errors and data_report.json, so one bad clip among many could not be found. A map (its result
    cached) only for splits that have such a clip. The split is remembered as loaded from `source`
    (`loaded_source`)."""
    _remember_source(split, source)
    if not _has_pathless_audio(split):
        return split

    def name(audio: list, rows: list[int]) -> dict:
        return {"audio": [a if a and a.get("path") else unnamed_audio(a, f"{source} row {row}")
                          for a, row in zip(audio, rows)]}

    return split.map(name, input_columns=["audio"], with_indices=True, batched=True, features=split.features,
                     desc=f"naming the audio without a file name in {source}")


def _has_pathless_audio(split: Dataset) -> bool:
    """Whether any cell of the (undecoded) audio column lacks a path: read from Arrow, not the audio bytes."""
    import pyarrow.compute as pc

    for chunk in split.data.column("audio").chunks:
        paths = chunk.field("path")
        if chunk.null_count or paths.null_count or pc.any(pc.equal(paths, "")).as_py():
            return True
    return False


def unnamed_audio(audio: Optional[dict], place: str) -> dict:
    """An undecoded clip without a file name, named by `place` (dataset, split and row)."""
    if audio and audio.get("bytes"):
        return {"path": f"<audio bytes without a file name: {place}>", "bytes": audio["bytes"]}
    return {"path": f"<empty audio cell: {place}>", "bytes": None}  # decoding says: not found


def bytes_clip_name(path: str, split: str, row: int) -> str:
    """A clip held as bytes, named by its stored file name, split and row: the name alone may be every row's."""
    return f"{path} ({split} row {row})"


def _remember_source(split: Dataset, source: str) -> None:
    """`split`'s Arrow folder remembered as holding rows of the dataset `source` names (`NAME (split 'SPLIT')`):
    nothing for a split held in memory, in several folders, or named otherwise."""
    named, folder = SOURCE_FORMAT.fullmatch(source), _arrow_folder(split)
    if named is None or folder is None:
        return
    name = os.path.expanduser(named["name"])
    _loaded_from[folder] = os.path.realpath(name) if os.path.isdir(name) else named["name"]


def loaded_source(split: Dataset) -> Optional[str]:
    """The dataset `split`'s rows were loaded from, as `--dataset_name` gave it (a folder made absolute), where it
    was loaded by hfspeech in this process and its Arrow files are still in that folder (None for a split built in
    Python, held in memory, or mapped elsewhere since)."""
    folder = _arrow_folder(split)
    return _loaded_from.get(folder) if folder is not None else None


def _arrow_folder(split: Dataset) -> Optional[str]:
    """The one folder (real path) of `split`'s Arrow files; None held in memory or spread over several."""
    folders = {os.path.realpath(Path(cache["filename"]).parent) for cache in split.cache_files}
    return folders.pop() if len(folders) == 1 else None


def stored_run(split: Dataset) -> Optional[tuple[int, int]]:
    """Where `split`'s table (before its indices) sits in the stored split it was loaded from: (its first row there,
    its rows), where it holds a run of that split's rows in order: the whole split, or a slice of it (datasets takes
    a run of rows, `train[:80%]` or a carved split of one row, as a slice of the table); None where that is not known
    (a table held in memory, filtered, or not the whole split's)."""
    from datasets.table import MemoryMappedTable, _memory_mapped_arrow_table_from_file

    stored = split.info.splits.get(str(split.split)) if split.info.splits and split.split else None
    table, replays = split.data, getattr(split.data, "replays", None) or []
    if stored is None or any(replay[0] == "filter" for replay in replays):
        return None
    slices = [replay[1][0] for replay in replays if replay[0] == "slice"]
    if not slices:
        return (0, table.num_rows) if table.num_rows == stored.num_examples else None
    if not isinstance(table, MemoryMappedTable) or \
            _memory_mapped_arrow_table_from_file(table.path).num_rows != stored.num_examples:
        return None
    return int(sum(slices)), table.num_rows  # each slice's offset into the one before; numpy ints (a 1-row carve)


def builder_version(arrow_file: str) -> Optional[Path]:
    """The folder a datasets builder wrote this version of a dataset into (`<cache>/<dataset>/<config id>/<version>/
    <hash>`, the hash made of its files, or a Hub commit), where `arrow_file` is in one; None elsewhere."""
    folder = Path(arrow_file).parent
    return folder if re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", folder.parent.name) else None
