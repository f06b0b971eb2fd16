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

import contextlib
import json
import logging
import os
import pickle
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from hfspeech.errors import HfspeechError, UsageError
from hfspeech.models.fingerprint import saving_weights
from hfspeech.models.loading import WEIGHT_FILES
from hfspeech.output_folders import check_output_folder, held_alone, remove_leftover_scratch
from hfspeech.training.distributed import agreed, values_of_every_process
from hfspeech.training.machine_folders import (NODE_LOCAL_REMEDY, PROBE_PREFIX, folder_sharing,
                                               machine_of_this_process, process_named, remove_rng_only_checkpoints,
                                               rng_states_only, save_on_each_node_refusal)
from hfspeech.training.run_folder import CHECKPOINT_NAME, FINAL_SAVE, STATE_FILE, run_trace, start_over  # (run.py)

logger = logging.getLogger("hfspeech.train")

PICKLED_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth")


class CheckpointError(HfspeechError, ValueError):
    """A checkpoint that cannot be resumed from; the message names the folder or file."""


def incomplete_reason(folder: str) -> Optional[str]:
    """Why `folder` is not a complete checkpoint (None when it is): what a kill during the save leaves."""
    state_file = os.path.join(folder, STATE_FILE)
    try:
        with open(state_file, encoding="utf-8") as f:
            state = json.load(f)
    except FileNotFoundError:
        if rng_states := rng_states_only(folder):  # most often not a save cut short: process 0's went to another disk
            return (f"only {', '.join(rng_states)} in it (what a process writes beside a checkpoint that process 0 "
                    "saves: on another machine's disk when each machine has its own output folder)")
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


def last_complete_checkpoint(output_dir: str, remove_incomplete: bool = True,
                             passed_over: Optional[dict] = None) -> Optional[str]:
    """The newest complete `checkpoint-N` in `output_dir` (None if none); newer incomplete ones are
    reported and, with `remove_incomplete`, deleted so that they cannot be picked up later. `passed_over`, when
    given, gets what was seen in each of those (`seen_in`), by name."""
    if not os.path.isdir(output_dir):
        return None
    numbered = [(int(m.group(1)), name) for name in os.listdir(output_dir)
                if (m := CHECKPOINT_NAME.match(name)) and os.path.isdir(os.path.join(output_dir, name))]
    for _, name in sorted(numbered, reverse=True):
        folder = os.path.join(output_dir, name)
        reason = incomplete_reason(folder)
        if reason is None:
            return folder
        if passed_over is not None:
            passed_over[name] = seen_in(folder, reason)
        logger.warning("%s: incomplete checkpoint, %s; %s", folder, reason,
                       "removing it and resuming from an earlier one" if remove_incomplete else "skipping it")
        if remove_incomplete:
            shutil.rmtree(folder, ignore_errors=True)
    return None


def check_resume_checkpoint(folder: str) -> None:
    """A checkpoint named by the user: it must exist and be complete."""
    problem = resume_checkpoint_problem(folder)
    if problem is not None:
        raise CheckpointError(problem)


def resume_checkpoint_problem(folder: str) -> Optional[str]:
    if not os.path.isdir(folder):
        return f"{folder}: --resume_from_checkpoint folder not found"
    reason = incomplete_reason(folder)
    return None if reason is None else f"{folder}: incomplete checkpoint, {reason}; resume from an earlier one"


def seen_in(folder: str, reason: Optional[str] = None) -> tuple[str, bool]:
    """What this process sees of a checkpoint another process resumes from, and whether that says the machines
    have each an output folder of their own (the folder missing, or only a process's RNG state in it)."""
    if not os.path.isdir(folder):
        return "there is no such folder on its machine", True
    if rng_states := rng_states_only(folder):
        return f"it sees only {', '.join(rng_states)} there", True
    return f"it is incomplete there ({reason or incomplete_reason(folder)})", False


def checkpoint_to_resume(training_args) -> Optional[str]:
    """`--resume_from_checkpoint` (checked), else the last complete checkpoint of the output folder, unless
    `--overwrite_output_dir`. Incomplete ones (a kill during a save) are skipped with a warning. Every process
    of a launched run must resume from the same checkpoint: their choices are gathered (a collective), and where
    they differ every process stops with the same line (`agreed_checkpoint`) instead of training apart."""
    if training_args.overwrite_output_dir and not training_args.resume_from_checkpoint:
        return None
    choice, problem, passed_over = agreed(lambda: this_process_choice(training_args))
    gathered = values_of_every_process((machine_of_this_process(), choice, problem, passed_over))
    agreed_checkpoint(gathered, training_args.resume_from_checkpoint)
    if choice and not training_args.resume_from_checkpoint:
        logger.info("resuming from %s (pass --overwrite_output_dir to start over)", choice)
    return choice


def this_process_choice(training_args) -> tuple[Optional[str], Optional[str], dict]:
    """The checkpoint this process would resume from, the one-line problem that stops it, and what it saw of the
    checkpoints it passed over (`seen_in`), for telling the other processes why it chose otherwise."""
    named = training_args.resume_from_checkpoint
    if named:
        problem = resume_checkpoint_problem(named)
        return (named, None, {}) if problem is None else (None, problem, {os.path.basename(named): seen_in(named)})
    try:
        check_output_dir(training_args.output_dir)
    except CheckpointError as error:
        return None, str(error), {}
    passed_over = {}
    # Only the process that saves removes incomplete checkpoints; the others skip them all the same.
    last_checkpoint = last_complete_checkpoint(training_args.output_dir, remove_incomplete=training_args.should_save,
                                               passed_over=passed_over)
    return last_checkpoint, None, passed_over


def agreed_checkpoint(gathered: list, named: Optional[str] = None) -> None:
    """Raise the same `CheckpointError` on every process unless all of them resume from the same checkpoint without
    a problem. `gathered`: (machine, choice, problem, passed_over) by global rank; `named`: --resume_from_checkpoint.
    One problem every process has (a shared folder) is said as one process says it."""
    machines = [machine for machine, *_ in gathered]
    problems = [problem for _, _, problem, _ in gathered]
    if problems[0] is not None and all(problem == problems[0] for problem in problems):
        raise CheckpointError(problems[0])
    choices = [choice for _, choice, _, _ in gathered]
    target = named or max((c for c in choices if c), key=lambda c: _step_of(c), default=None)
    for rank, (_, choice, problem, passed_over) in enumerate(gathered):
        if problem is not None and not named:  # its folder refused (`check_output_dir`)
            raise CheckpointError(f"{process_named(rank, machines)}: {problem}")
        if target is not None and choice != target:
            seen, own_folders = passed_over.get(os.path.basename(os.path.normpath(target)),
                                                ("there is no such folder on its machine", True))
            remedy = NODE_LOCAL_REMEDY if own_folders else (
                "(the machines' output folders hold different checkpoints): pass --resume_from_checkpoint with "
                "one every machine holds complete, or --overwrite_output_dir to start over")
            raise CheckpointError(f"{process_named(rank, machines)} cannot resume from {target}: {seen} {remedy}")


def _step_of(checkpoint: str) -> int:
    match = CHECKPOINT_NAME.match(os.path.basename(os.path.normpath(checkpoint)))
    return int(match.group(1)) if match else -1


def check_output_dir(output_dir: str) -> None:
    """An output folder that holds files but no trace of a training run (a data folder, someone's notes, another
    tool's model) is refused: the run would overwrite its config.json, model.safetensors ... without a word. Another
    machine's probe (`machine_folders`) is no trace of a run: beside the user's files it made them pass as one."""
    names = [name for name in (os.listdir(output_dir) if os.path.isdir(output_dir) else [])
             if not name.startswith(PROBE_PREFIX)]
    check_output_folder(output_dir, "--output_dir", ours=lambda name: run_trace(name) or (
                        not names and name.startswith(PROBE_PREFIX)), earlier="from a training run",
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
    removed: it stayed until the next final save there, hours later or never (a live run's is locked and kept).
    Launched on several processes, every one stops with the same line where one is refused (`machine_folders`):
    `--save_on_each_node` into a folder machines share, or the lock lost; at the end, a process whose folder process
    0 does not write removes the checkpoint folders holding only its RNG state."""
    sharing = folder_sharing(training_args.output_dir, training_args.local_process_index == 0)
    if training_args.save_on_each_node and (refusal := save_on_each_node_refusal(sharing, training_args.output_dir)):
        sharing.remove_created()
        raise UsageError(refusal)
    with contextlib.ExitStack() as held:
        refused = None
        if training_args.should_save:
            try:
                held.enter_context(held_alone(training_args.output_dir, "another training run is writing to this "
                                              "folder now; wait for it to end (then run the same command again: it "
                                              "resumes), or give another --output_dir", flag="--output_dir"))
            except UsageError as error:
                refused = str(error)
        if sharing is not None and (refusals := [r for r in values_of_every_process(refused) if r]):
            raise UsageError(refusals[0])
        if refused:
            raise UsageError(refused)
        if training_args.should_save:
            remove_leftover_scratch(Path(training_args.output_dir) / FINAL_SAVE)
        yield
    if sharing is not None and not training_args.save_on_each_node and not sharing.sees_process_zero(
            training_args.process_index):
        remove_rng_only_checkpoints(training_args.output_dir, sharing.apart_from_process_zero(), CHECKPOINT_NAME)
