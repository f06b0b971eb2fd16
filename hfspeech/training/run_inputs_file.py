"""`run_inputs.json` on disk: the run folder's record of the data (and pretrained start) its checkpoints were trained
on, read back whole or named in one line where it is no record, and written whole. What it holds and how a resume
is checked against it is `resume_inputs`'s."""

from __future__ import annotations

import json
import os
from typing import Optional

from hfspeech.training.checkpoints import CheckpointError

DATA_RECORD_FILE = "run_inputs.json"  # in the run folder: the data (and pretrained start) of its checkpoints


def record_path(checkpoint: Optional[str]) -> Optional[str]:
    """The run_inputs.json of the run folder holding `checkpoint`."""
    return os.path.join(os.path.dirname(os.path.normpath(checkpoint)), DATA_RECORD_FILE) if checkpoint else None


def saved_record(checkpoint: Optional[str]) -> Optional[dict]:
    """The run_inputs.json of the run folder holding `checkpoint`; None where there is none (an older run). One that
    is no record (`[]`, `{}`: emptied or cut short) is one line: `[]` was an AttributeError traceback, and `{}` was
    refused as "other data", every flag `None -> ...`."""
    saved_path = record_path(checkpoint)
    if not saved_path or not os.path.isfile(saved_path):
        return None
    try:
        with open(saved_path, encoding="utf-8") as f:
            saved = json.load(f)
    except ValueError as error:  # a hand edit or a full disk: named, not a JSON traceback
        raise CheckpointError(f"{saved_path}: not valid JSON ({error}); fix or delete it to resume") from None
    if not isinstance(saved, dict) or not saved:
        raise not_a_record(saved_path, saved)
    return saved


def not_a_record(path: str, saved) -> CheckpointError:
    """The one line for a run_inputs.json that records none of its run's data: what it holds, and the way out."""
    shown = json.dumps(saved) if len(json.dumps(saved)) <= 40 else f"{json.dumps(saved)[:37]}..."
    return CheckpointError(f"{path}: holds `{shown}`, not a record of its run's data (emptied, cut short or "
                           "edited); restore it, or delete it to resume unchecked (with the data and flags the run was "
                           "trained with)")


def write_record(output_dir: str, record: dict) -> None:
    """Written whole (renamed into place), so that other processes checking it never read half a file."""
    os.makedirs(output_dir, exist_ok=True)
    temporary = os.path.join(output_dir, f".{DATA_RECORD_FILE}.tmp")
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    os.replace(temporary, os.path.join(output_dir, DATA_RECORD_FILE))
