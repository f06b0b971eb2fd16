"""The per-row functions of a streamed Hub dataset (`data.hub_stream`), as module-level classes.

A `datasets.IterableDataset` keeps the functions given to its `map` and `filter`, and `--dataloader_num_workers N`
sends the stream to each worker. On macOS and Windows workers are started with `spawn`, which pickles what they
get; closures and lambdas do not pickle, and training stopped at its first batch with "Can't pickle local object".
Instances of these classes pickle with their settings."""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

from datasets import ClassLabel

from hfspeech.data.audio import describe_source
from hfspeech.data.clip_names import unnamed_audio
from hfspeech.data.stream_draws import KEY_COLUMN, clip_key, reference_key
from hfspeech.data.streaming import StreamError


class NotHeldOut:
    """`filter` predicate: keeps the clips whose `reference_key` is not one of those held out for evaluation."""

    def __init__(self, held_keys: set[str]):
        self.held_keys = held_keys

    def __call__(self, example: dict[str, Any]) -> bool:
        return clip_key(example) not in self.held_keys


class AudioReference:
    """`map(with_indices=True)`: a row as `audio` (undecoded `{"path", "bytes"}`), `label` and its `reference_key`
    (`KEY_COLUMN`: hashed here once, for the held-out filter and the clip's draws). Bytes without a file name are
    named `<source> row N` when `by_row`, else by that key (rows of several shuffled shards have no stable number)."""

    def __init__(self, audio_column: str, label_column: str, source: str, by_row: bool):
        self.audio_column, self.label_column, self.source, self.by_row = audio_column, label_column, source, by_row

    def __call__(self, example: dict[str, Any], row: int) -> dict[str, Any]:
        audio = example[self.audio_column]
        if isinstance(audio, (str, os.PathLike)):
            audio = {"path": str(audio), "bytes": None}
        elif not audio or not audio.get("path") and (self.by_row or not audio.get("bytes")):  # or an empty cell
            audio = unnamed_audio(audio, f"{self.source} row {row}")
        key = reference_key(audio)
        if not audio.get("path"):  # bytes of shuffled shards, named by the key (naming keeps it: the bytes' hash)
            audio = unnamed_audio(audio, f"{self.source} clip {key}")
        return {"audio": audio, "label": example[self.label_column], KEY_COLUMN: key}


class LabelEncoder:
    """`map`: a row's label (a name, or a `ClassLabel` id of `feature`) as its id in `label_names`; a list, an
    empty or an unknown label is a one-line `StreamError` naming the clip and `split`."""

    def __init__(self, label_names: Sequence[str], feature: Optional[ClassLabel], split: str):
        self.label_names, self.feature, self.split = list(label_names), feature, split
        self.index = {name: i for i, name in enumerate(self.label_names)}

    def __call__(self, example: dict[str, Any]) -> dict[str, int]:
        value, split = example["label"], self.split
        if isinstance(value, (list, tuple)):
            raise StreamError(f"{describe_source(example['audio'])}: the label is a list {value} in split '{split}' (multi-label data); "
                              "--streaming from a Hub dataset trains single-label classifiers: drop --streaming, "
                              "or save the dataset with save_to_disk and stream that")
        name = self.feature.int2str(value) if self.feature is not None and isinstance(value, int) else str(value)
        if value is None or name.strip() == "":
            raise StreamError(f"{describe_source(example['audio'])}: empty label in split '{split}'")
        if name not in self.index:
            raise StreamError(f"{describe_source(example['audio'])}: unknown label '{name}' in split '{split}'; "
                              f"known labels: {self.label_names}")
        return {"label": self.index[name]}
