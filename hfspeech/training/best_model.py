"""Say so when the kept "best" model won a tie its selection metric cannot break.

`load_best_model_at_end` keeps the checkpoint with the best `metric_for_best_model`, and on a tie the
*first* one. On small or easy validation sets accuracy saturates: FSDD's validation clips score 1.000 from
the first or second epoch of a Whisper probe on, so the run kept that early, under-trained head and its
held-out speaker scored 0.880 where the last epoch's (the lowest validation loss) scored 0.950. Trainer
says nothing about it. `tied_best_metric_warning` reads the evaluation history and returns a one-line
warning when the kept evaluation tied with later ones that reached a lower validation loss. Only the evaluations
the best was chosen among count: a run resumed with another metric (or without its earlier best) keeps the earlier
evaluations in its log, but not as candidates (`resumed_best.evaluated_since`).
"""

from __future__ import annotations

import logging
import math
from typing import Optional

from hfspeech.training.resumed_best import evaluated_since

logger = logging.getLogger("hfspeech.train")


def _evaluations(log_history: list[dict], key: str, since_step: int) -> list[dict]:
    return [entry for entry in log_history if key in entry and "eval_loss" in entry
            and entry.get("step", 0) > since_step]


def tied_best_metric_warning(log_history: list[dict], metric: Optional[str], greater_is_better: Optional[bool],
                             best_step: Optional[int], since_step: int = 0) -> Optional[str]:
    """A warning when the best `metric` was reached at several evaluations, the kept one (`best_step`) is the
    earliest, and a later tied evaluation had a lower validation loss; else None. Only the evaluations after
    `since_step` count: those the best was chosen among."""
    if not metric or best_step is None or metric.removeprefix("eval_") == "loss":
        return None
    key = metric if metric.startswith("eval_") else f"eval_{metric}"
    evaluations = _evaluations(log_history, key, since_step)
    if len(evaluations) < 2:
        return None
    best = (max if greater_is_better is not False else min)(entry[key] for entry in evaluations)
    tied = [entry for entry in evaluations if math.isclose(entry[key], best, rel_tol=0, abs_tol=1e-12)]
    kept = next((entry for entry in tied if entry.get("step") == best_step), None)
    if kept is None or len(tied) < 2:
        return None
    lowest = min(tied, key=lambda entry: entry["eval_loss"])
    if lowest is kept or lowest["eval_loss"] >= kept["eval_loss"]:
        return None
    return (f"validation {key.removeprefix('eval_')} tied at its best ({best:.4g}) at {len(tied)} evaluations; "
            f"the kept model is from step {kept['step']} (validation loss {kept['eval_loss']:.4g}), while step "
            f"{lowest['step']} had loss {lowest['eval_loss']:.4g}: --metric_for_best_model loss would rank them")


def warn_if_best_metric_tied(trainer) -> Optional[str]:
    """Log (and return) `tied_best_metric_warning` for a trainer that kept its best model."""
    args, state = trainer.args, trainer.state
    if not args.load_best_model_at_end or not state.best_model_checkpoint:
        return None
    step = int(state.best_model_checkpoint.rstrip("/").rsplit("-", 1)[-1])
    message = tied_best_metric_warning(state.log_history, args.metric_for_best_model, args.greater_is_better, step,
                                       evaluated_since(trainer))
    if message:
        logger.warning(message)
    return message
