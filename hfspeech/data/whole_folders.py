"""Datasets saved whole or not at all, for the caches `data.loading` and `training.teacher_cache` keep.

`save_to_disk` writes a folder file by file: a run killed, or a disk that filled, part-way left a folder that a
later run read as a cache (a traceback, or fewer rows). Saved beside it and renamed, a folder is complete or
absent; the caller decides what a failed write means to its user (one-line error, or a warning)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Union

from datasets import Dataset, DatasetDict


def save_whole(dataset: Union[Dataset, DatasetDict], folder: Union[str, Path]) -> None:
    """Save `dataset` to a hidden `.<name>.partial-<pid>` beside `folder`, then rename it to `folder`, replacing
    what was there (a damaged cache, or the same data another process saved meanwhile). Raises the `OSError` of
    a failed write; no partial folder is left either way."""
    folder = Path(folder)
    partial = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    try:
        dataset.save_to_disk(str(partial))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
