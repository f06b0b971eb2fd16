"""`Trainer.train` for one session of a run, and the train metrics that session may report.

A run resumes from the last checkpoint of `--output_dir`, so the same command rerun into a finished run's folder
(or into a run killed after its last checkpoint was saved) "resumes" at the schedule's last step and takes none.
Trainer still reports that session: `train_loss` 0.0 (no loss summed), a throughput of the whole run's samples
over a session of milliseconds, and that summary appended to trainer_state.json's log, so metrics.json,
all_results.json and trainer_state.json lost the finished run's numbers (and every fold of a `cross-validate`
rerun after an interruption did). A session that trained nothing reports the finished run's own summary instead,
the one its run folder's trainer_state.json holds for that step, or, where the run was stopped before writing one, no
`train_*` numbers at all; a log line says there was nothing left to train. A session that took a step reports
Trainer's numbers as they are (`train_loss`: this session's summed loss divided by all the run's steps).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Optional

from hfspeech.training.checkpoints import STATE_FILE, resume_errors
from hfspeech.training.resumed_best import BestMetricChoice, ResumedBestCheckpoint

logger = logging.getLogger("hfspeech.train")

SUMMARY_KEY = "train_loss"  # only in the log entry Trainer writes at the end of `train()` (a step's has "loss")
SESSION_PREFIX = "train_"  # what a session measures of itself (loss, runtime, speed, memory); not epoch, total_flos


def logged_state(folder: str) -> dict:
    """A trainer_state.json (a checkpoint's, or the one a finished run writes beside its model); {} if unreadable."""
    try:
        with open(os.path.join(folder, STATE_FILE), encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def finished_summary(output_dir: str, step: int) -> Optional[dict]:
    """The end-of-training log entry of the run that finished at `step` in `output_dir`, or None: no such run
    (killed after its last checkpoint), or the folder's state is of an earlier, shorter schedule."""
    state = logged_state(output_dir)
    if state.get("global_step") != step:
        return None
    summaries = [entry for entry in state.get("log_history") or [] if isinstance(entry, dict) and SUMMARY_KEY in entry]
    return summaries[-1] if summaries and summaries[-1].get("step") == step else None


def nothing_trained_metrics(trainer, metrics: dict, checkpoint: str) -> dict:
    """`metrics` of a session that took no step: the values of the run `checkpoint` finished (its own folder's:
    `--resume_from_checkpoint A/checkpoint-N --output_dir C` read C's, another run's or none), else none of the
    session's own; the summary `train()` has just appended to trainer_state.json's log likewise."""
    step, history = trainer.state.global_step, trainer.state.log_history
    summary = finished_summary(os.path.dirname(os.path.normpath(checkpoint)), step)
    ends = [index for index, entry in enumerate(history) if SUMMARY_KEY in entry]
    if summary is not None:
        kept = {key: summary.get(key, value) for key, value in metrics.items()}
        said = f"metrics.json keeps the finished run's train_loss {kept.get(SUMMARY_KEY)}"
    else:
        kept = {key: value for key, value in metrics.items() if not key.startswith(SESSION_PREFIX)}
        said = "the run stopped before it recorded its train loss, so metrics.json has none"
        summary = {key: value for key, value in history[ends[-1]].items() if not key.startswith(SESSION_PREFIX)}
    history[ends[-1]] = summary
    logger.info("nothing left to train: the checkpoint is at step %d, the end of this schedule or past it (more "
                "--num_train_epochs or --max_steps train on; --overwrite_output_dir starts over); %s", step, said)
    return kept


def train_session(trainer, checkpoint: Optional[str]) -> dict:
    """`trainer.train(resume_from_checkpoint=checkpoint)`'s metrics, or a finished run's where it trained nothing."""
    start_step = logged_state(checkpoint).get("global_step") if checkpoint else None
    trainer.add_callback(BestMetricChoice())  # which metric chose the best, kept in each checkpoint
    if checkpoint:  # its best checkpoint's path is where the run was when it was saved (`training.resumed_best`)
        trainer.add_callback(ResumedBestCheckpoint(checkpoint))
    with resume_errors(checkpoint):
        result = trainer.train(resume_from_checkpoint=checkpoint)
    if start_step is None or trainer.state.global_step != start_step:
        return result.metrics
    return nothing_trained_metrics(trainer, result.metrics, checkpoint)
