"""This process's scratch folder in the datasets cache: files a run reads until it exits (a streamed dataset's
evaluation rows, `data.hub_stream`), removed at exit, and a killed run's by the next run's first call."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

from hfspeech.errors import writing_to
from hfspeech.output_folders import locked_scratch, remove_leftover_scratch

RUN_SCRATCH = "hfspeech-run-scratch"  # under the datasets cache: `.hfspeech-run-scratch-partial-*` folders
_run_scratch: dict[Path, Path] = {}


def run_scratch_folder() -> Path:
    """This process's locked scratch folder in the datasets cache (`output_folders.locked_scratch`), for files
    it reads until it exits (a streamed dataset's evaluation rows, `data.hub_stream`): removed at exit, and a
    killed run's (SIGKILL, the OOM killer), which nothing holds, by the next run's first call (held in memory, the
    rows were there twice; written to $TMPDIR, a killed run left them for good). One folder a process: a notebook
    that streams three times keeps the three runs' evaluation rows until it exits."""
    import atexit
    import datasets

    destination = Path(datasets.config.HF_DATASETS_CACHE) / RUN_SCRATCH
    if destination not in _run_scratch:
        with writing_to(destination.parent, "set HF_DATASETS_CACHE to a folder you can write"):
            destination.parent.mkdir(parents=True, exist_ok=True)
            remove_leftover_scratch(destination)
            folder, handle = locked_scratch(destination)
        _run_scratch[destination] = folder
        atexit.register(_remove_run_scratch, folder, handle, os.getpid())
    return _run_scratch[destination]


def _remove_run_scratch(folder: Path, handle: Optional[int], owner: int) -> None:
    """The scratch folder removed, then its lock let go; by the process that made it only (not a forked child)."""
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)
        if handle is not None:
            os.close(handle)
