"""Names for clips that have no file name: audio a dataset holds as bytes (built from arrays), or an empty
audio cell. They are named by dataset, split and row -- `<audio bytes without a file name: DATASET (split
'train') row 4>` -- in errors and in data_report.json, map-style (`name_pathless_audio`, when a dataset is
loaded) and streamed (`unnamed_audio`, per row of the stream) alike; `data.audio.describe_source` names the
rest by their path.
"""

from __future__ import annotations

from typing import Optional

from datasets import Dataset


def name_pathless_audio(split: Dataset, source: str) -> Dataset:
    """Audio without a file name (bytes of a dataset built from arrays, or an empty cell) named by dataset,
    split and row, as `--streaming` names it (`unnamed_audio`): every such clip was `<audio bytes without a
    path>` in errors and data_report.json, so one bad clip among many could not be found. A map (its result
    cached) only for splits that have such a clip."""
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
