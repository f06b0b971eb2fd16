"""Which checkpoint a run resumes from: the last *complete* one, never a half-written folder.

`Trainer._save_checkpoint` writes `checkpoint-N/` file by file -- weights, optimizer, scheduler, RNG states
-- and `trainer_state.json` last. A run killed in the middle of that (`kill -9`, a pre-empted job, a full
disk) leaves a folder without a readable `trainer_state.json`, or with weights cut short; transformers'
`get_last_checkpoint` would pick it by its number alone and the rerun would crash on it. Here such a
folder is reported with a warning and removed, and the run resumes from the newest checkpoint that is
complete (or starts over when there is none). A checkpoint the user names with `--resume_from_checkpoint`
that is incomplete is an error instead: that choice is theirs to change.

Resuming loads the optimizer, scheduler and RNG files with `torch.load(weights_only=True)`; a file that is
refused (tampered with, or not written by Trainer) is named in a one-line `CheckpointError`.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from hfspeech.errors import HfspeechError
from hfspeech.models.fingerprint import saving_weights
from hfspeech.models.loading import WEIGHT_FILES
from hfspeech.output_folders import check_output_folder, held_alone, remove_leftover_scratch

logger = logging.getLogger("hfspeech.train")

CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"  # written last by Trainer._save_checkpoint: the checkpoint's completion mark
PICKLED_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth")
# What a run (or a cross-validation fold) leaves in its folder before its first checkpoint, or at its end.
# ".run_inputs.json.tmp": the record being written by the main process while another one checks the folder
# (`accelerate launch`: that process refused the folder, "holds other files", and the launch failed).
RUN_MARKERS = (STATE_FILE, "training_args.bin", "runs", "manifests", "streamed_skipped_files.jsonl",
               "run_inputs.json", ".run_inputs.json.tmp")  # resume_inputs.DATA_RECORD_FILE
FINAL_SAVE = "final-save"  # `training.final_save` saves in `.final-save-partial-*` (`output_folders.locked_scratch`)


class CheckpointError(HfspeechError, ValueError):
    """A checkpoint that cannot be resumed from; the message names the folder or file."""


def incomplete_reason(folder: str) -> Optional[str]:
    """Why `folder` is not a complete checkpoint (None when it is): what a kill during the save leaves."""
    state_file = os.path.join(folder, STATE_FILE)
    try:
        with open(state_file, encoding="utf-8") as f:
            state = json.load(f)
    except FileNotFoundError:
        return f"no {STATE_FILE} (the save was interrupted)"
    except (OSError, ValueError) as error:
        return f"{STATE_FILE} cannot be read ({error})"
    match = CHECKPOINT_NAME.match(os.path.basename(os.path.normpath(folder)))
    if match and state.get("global_step") != int(match.group(1)):
        return f"{STATE_FILE} is for step {state.get('global_step')}, not {match.group(1)}"
    weights = next((name for name in WEIGHT_FILES if os.path.isfile(os.path.join(folder, name))), None)
    if weights is None:
        return "no model weights"
    if weights == "model.safetensors":
        return _safetensors_problem(os.path.join(folder, weights))
    return None


def _safetensors_problem(path: str) -> Optional[str]:
    """The header is read and its tensors' byte range compared with the file's size: a file cut short fails."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            f.keys()
    except Exception as error:  # SafetensorError: truncated or not a safetensors file
        return f"model.safetensors cannot be read ({error})"
    return None


def last_complete_checkpoint(output_dir: str, remove_incomplete: bool = True) -> Optional[str]:
    """The newest complete `checkpoint-N` in `output_dir` (None if none); newer incomplete ones are
    reported and, with `remove_incomplete`, deleted so that they cannot be picked up later."""
    if not os.path.isdir(output_dir):
        return None
    numbered = [(int(m.group(1)), name) for name in os.listdir(output_dir)
                if (m := CHECKPOINT_NAME.match(name)) and os.path.isdir(os.path.join(output_dir, name))]
    for _, name in sorted(numbered, reverse=True):
        folder = os.path.join(output_dir, name)
        reason = incomplete_reason(folder)
        if reason is None:
            return folder
        logger.warning("%s: incomplete checkpoint, %s; %s", folder, reason,
                       "removing it and resuming from an earlier one" if remove_incomplete else "skipping it")
        if remove_incomplete:
            shutil.rmtree(folder, ignore_errors=True)
    return None


def check_resume_checkpoint(folder: str) -> None:
    """A checkpoint named by the user: it must exist and be complete."""
    if not os.path.isdir(folder):
        raise CheckpointError(f"{folder}: --resume_from_checkpoint folder not found")
    reason = incomplete_reason(folder)
    if reason is not None:
        raise CheckpointError(f"{folder}: incomplete checkpoint, {reason}; resume from an earlier one")


def checkpoint_to_resume(training_args) -> Optional[str]:
    """`--resume_from_checkpoint` (checked), else the last complete checkpoint of the output folder, unless
    `--overwrite_output_dir`. Incomplete ones (a kill during a save) are skipped with a warning."""
    if training_args.resume_from_checkpoint:
        check_resume_checkpoint(training_args.resume_from_checkpoint)
        return training_args.resume_from_checkpoint
    if training_args.overwrite_output_dir:
        return None
    check_output_dir(training_args.output_dir)
    # Only the process that saves removes incomplete checkpoints; the others skip them all the same.
    last_checkpoint = last_complete_checkpoint(training_args.output_dir, remove_incomplete=training_args.should_save)
    if last_checkpoint:
        logger.info("resuming from %s (pass --overwrite_output_dir to start over)", last_checkpoint)
    return last_checkpoint


def check_output_dir(output_dir: str) -> None:
    """An output folder that holds files but no trace of a training run (a data folder, someone's notes, another
    tool's model) is refused: the run would overwrite its config.json, model.safetensors ... without a word."""
    check_output_folder(output_dir, "--output_dir", ours=lambda name: name in RUN_MARKERS or
                        bool(CHECKPOINT_NAME.match(name)), earlier="from a training run",
                        remedy="or pass --overwrite_output_dir to write over them", error=CheckpointError)


def checkpoint_write_errors(output_dir: str, step: Optional[int] = None):
    """Around `Trainer._save_checkpoint` (`training.trainer`) of `checkpoint-<step>`: a checkpoint file that cannot
    be written for want of space (or on a read-only disk) is one line naming `output_dir`, not a traceback from
    torch, safetensors or Trainer (`errors.writing_to`, the one rule for every save). The half-written checkpoint is
    skipped and removed by the next run, which resumes. Its weights get the usual file mode (`saving_weights`)."""
    folder = os.path.join(output_dir, f"checkpoint-{step}") if step is not None else None
    return saving_weights(output_dir, "make room and run the same command again: it resumes from the last complete "
                          "checkpoint", what="a checkpoint", weights_in=folder)


def model_write_errors(output_dir: str):
    """Around the save of a run's model (`training.run.save_model`): `checkpoint_write_errors`' rule for it."""
    return saving_weights(output_dir, "the model was not saved whole; make room and run the same command again")


@contextmanager
def resume_errors(checkpoint: Optional[str]) -> Iterator[None]:
    """Name the file when resuming fails because `torch.load(weights_only=True)` refuses one of its files: one
    line, not a traceback from Trainer or torch."""
    try:
        yield
    except pickle.UnpicklingError as error:
        if checkpoint is None:
            raise
        culprit = _refused_file(checkpoint) or checkpoint
        raise CheckpointError(f"{culprit}: refused by torch.load(weights_only=True), so not resumed from (the file "
                              "was not written by Trainer or was tampered with); delete the checkpoint or pass "
                              "--overwrite_output_dir") from error


def _refused_file(checkpoint: str) -> Optional[str]:
    """The first of the checkpoint's pickled files that weights-only loading refuses."""
    import torch
    from transformers.trainer import safe_globals

    for name in PICKLED_FILES:
        path = os.path.join(checkpoint, name)
        if not os.path.isfile(path):
            continue
        try:
            with safe_globals():
                torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            return path
    return None


@contextmanager
def output_dir_held(training_args) -> Iterator[None]:
    """`--output_dir` held for the whole run by the process that saves (`output_folders.held_alone`), before the
    checkpoint to resume is chosen: a second run into it, started or resumed meanwhile, is refused in one line. Once
    held, a killed run's final-save folder (`.final-save-partial-*`, a whole model copy: `kill -9` while it saved) is
    removed: it stayed until the next final save there, hours later or never (a live run's is locked and kept)."""
    if not training_args.should_save:
        yield
        return
    with held_alone(training_args.output_dir, "another training run is writing to this folder now; wait for it "
                    "to end (then run the same command again: it resumes), or give another --output_dir",
                    flag="--output_dir"):
        remove_leftover_scratch(Path(training_args.output_dir) / FINAL_SAVE)
        yield
