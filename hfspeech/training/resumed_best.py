"""The "best" checkpoint a resumed run keeps, when its checkpoint was copied or moved.

Trainer reads `best_model_checkpoint` back from the checkpoint's trainer_state.json as it was written: the path
of the best checkpoint in the folder the run was *then* in. Trainer re-points it only when a later save finds that
step's checkpoint in the new `--output_dir`. `train --resume_from_checkpoint COPY/checkpoint-2 --output_dir NEW`
therefore loaded, at the end, whatever the old path held: another run's weights if that folder had been reused,
or, the folder gone, the last epoch with transformers' "Could not locate the best model" (about
--save_on_each_node). Here, as training begins, the best checkpoint is looked for beside the resumed one (where a
copy of the whole run has it), then at its recorded path (a run resumed from another run's checkpoint and then
resumed itself: the best is still that run's), each only where its trainer_state.json holds that step and best
metric; when neither does the earlier best is forgotten, with one warning, so the model kept is the best of the
evaluations still to come.

Trainer keeps the best by value alone, so a run resumed with another `--metric_for_best_model` (or direction)
compared its evaluations with the checkpoint's best of the old metric and kept a "best" chosen by neither, without a
word (upgrade audit). `BestMetricChoice` records the metric and direction in each checkpoint's trainer_state.json
(`stateful_callbacks`); a resumed run whose checkpoint records another forgets the earlier best, with one warning.
A checkpoint that records none (made before this, or elsewhere) is resumed as before: its log's values do not say
which metric chose its best (an edited or carried-over best need not appear there).

A forgotten best leaves its evaluations in the log (trainer_state.json keeps every entry, each with every metric),
though none of them may be kept: `BestMetricChoice` also records the step the kept best's candidates begin after
(`since_step`), for `best_model`'s tie warning, which named a tie among or with them (counting a step the other
metric chose among the tied, or silent where one of them scored above every evaluation that could be kept).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Optional

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from hfspeech.training.checkpoints import CHECKPOINT_NAME, STATE_FILE

logger = logging.getLogger("hfspeech.train")


def best_step(state) -> Optional[int]:
    """The step of the state's best checkpoint: `best_global_step`, else the number in its folder's name."""
    if state.best_global_step:
        return int(state.best_global_step)
    match = CHECKPOINT_NAME.match(os.path.basename(os.path.normpath(state.best_model_checkpoint)))
    return int(match.group(1)) if match else None


def repoint_best_checkpoint(state, resumed_from: str) -> None:
    """Point `state.best_model_checkpoint` at `checkpoint-<best step>` beside `resumed_from` where that holds the
    best step (a copied run: its own), else keep the recorded path where it still does (a run resumed from another
    run's checkpoint points at that run's, and resuming it again must keep it); else drop the earlier best (path,
    step and metric), saying so in one warning line."""
    if not state.best_model_checkpoint:
        return
    step = best_step(state)
    beside = os.path.join(os.path.dirname(os.path.normpath(resumed_from)), f"checkpoint-{step}")
    for candidate in (beside, state.best_model_checkpoint):
        if step is not None and holds_best(candidate, step, state.best_metric):
            if os.path.normpath(candidate) != os.path.normpath(state.best_model_checkpoint):
                logger.info("best checkpoint so far: %s (its trainer_state.json said %s)", candidate,
                            state.best_model_checkpoint)
            state.best_model_checkpoint = candidate
            return
    logger.warning("warning: %s: the best checkpoint so far (%s, step %s) is not beside it, so it is not used (nor "
                   "is it there); the model kept at the end is the best of the evaluations from here on", resumed_from,
                   state.best_model_checkpoint, step)
    state.best_model_checkpoint, state.best_global_step, state.best_metric = None, None, None


def holds_best(checkpoint: str, step: int, best_metric) -> bool:
    """Whether `checkpoint` is the best step's checkpoint: its trainer_state.json was saved at `step` and, where
    both record one, with the same best metric (a reused folder's checkpoint of that step is another run's)."""
    try:
        with open(os.path.join(checkpoint, STATE_FILE), encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return False
    if not isinstance(saved, dict) or saved.get("global_step") != step:
        return False
    return best_metric is None or saved.get("best_metric") is None or saved.get("best_metric") == best_metric


class ResumedBestCheckpoint(TrainerCallback):
    """`repoint_best_checkpoint` once Trainer has read the resumed checkpoint's state, before the first step."""

    def __init__(self, resumed_from: str):
        self.resumed_from = resumed_from

    def on_train_begin(self, args, state, control, **kwargs):
        forget_best_of_another_metric(state, args, self.resumed_from)
        repoint_best_checkpoint(state, self.resumed_from)


class BestMetricChoice(TrainerCallback, ExportableState):
    """The `--metric_for_best_model` and `--greater_is_better` that chose the best so far, saved by Trainer (an
    `ExportableState`) in every checkpoint's trainer_state.json, for `forget_best_of_another_metric` to read; and
    `since_step`: the best is chosen among the evaluations after that step (0: all), where an earlier best was
    forgotten at a resume (`evaluated_since`)."""

    def __init__(self, metric_for_best_model: Optional[str] = None, greater_is_better: Optional[bool] = None,
                 since_step: int = 0):
        self.metric_for_best_model, self.greater_is_better = metric_for_best_model, greater_is_better
        self.since_step, self.resumed_at = since_step, None

    def state(self) -> dict:
        return {"args": {"metric_for_best_model": self.metric_for_best_model,
                         "greater_is_better": self.greater_is_better, "since_step": self.since_step},
                "attributes": {}}

    def on_train_begin(self, args, state, control, **kwargs):
        """This run's choice (also where `--restore_callback_states_from_checkpoint` rebuilt this callback with the
        checkpoint's), and an entry for it in a resumed state that has none: Trainer's save looks it up by name.
        `since_step`: the checkpoint's where it records this choice (or none), else the resumed step (another
        metric chose the evaluations before it, whether or not their best is kept: a finished run run again)."""
        self.metric_for_best_model, self.greater_is_better = args.metric_for_best_model, args.greater_is_better
        recorded = recorded_choice(state)
        same = recorded is None or recorded == choice(args.metric_for_best_model, args.greater_is_better)
        self.since_step = recorded_since(state) if same else state.global_step
        self.resumed_at = state.global_step
        state.stateful_callbacks.setdefault(type(self).__name__, self.state())

    def on_step_begin(self, args, state, control, **kwargs):
        """Once, after every `on_train_begin` (`ResumedBestCheckpoint`'s runs after this one's): a resumed run whose
        earlier best was forgotten (another metric's, or not found) chooses among the evaluations from here on."""
        if self.resumed_at is not None and state.best_model_checkpoint is None and state.best_metric is None:
            self.since_step = self.resumed_at
        self.resumed_at = None


def evaluated_since(trainer) -> int:
    """The step after which the evaluations the kept best was chosen among begin (`BestMetricChoice.since_step`);
    0 (all of them) for a trainer without the callback."""
    callbacks = getattr(getattr(trainer, "callback_handler", None), "callbacks", ())
    return next((callback.since_step for callback in callbacks if isinstance(callback, BestMetricChoice)), 0)


def recorded_choice(state) -> Optional[tuple]:
    """The (metric, direction) the resumed checkpoint records (`BestMetricChoice`), or None where it records none."""
    recorded = _recorded(state)
    if not recorded.get("metric_for_best_model"):
        return None
    return choice(recorded["metric_for_best_model"], recorded.get("greater_is_better"))


def recorded_since(state) -> int:
    """The `since_step` the resumed checkpoint records; 0 where it records none (an earlier hfspeech's: all)."""
    since = _recorded(state).get("since_step")
    return since if isinstance(since, int) and since > 0 else 0


def _recorded(state) -> dict:
    """The `BestMetricChoice` arguments the state's checkpoint saved; {} where it saved none."""
    saved = (state.stateful_callbacks or {}).get(BestMetricChoice.__name__)
    saved = saved[-1] if isinstance(saved, list) and saved else saved
    recorded = saved.get("args") if isinstance(saved, dict) else None
    return recorded if isinstance(recorded, dict) else {}


def choice(metric: Optional[str], greater_is_better: Optional[bool]) -> tuple:
    """A metric and direction as Trainer compares them: `eval_accuracy` is `accuracy`; None is lower-is-better."""
    return (metric or "").removeprefix("eval_"), bool(greater_is_better)


def forget_best_of_another_metric(state, args, resumed_from: str) -> None:
    """Forget the earlier best (path, step, metric) where the checkpoint records that another metric or direction
    chose it, in one warning naming both: the model kept is then the best by this run's metric from here on. Not
    where no step is left to train (a finished run run again): with no evaluation to come, forgetting it kept the
    last checkpoint instead (every fold of a cross-validation run again); it is kept, and the warning says so."""
    recorded = recorded_choice(state)
    ours = choice(args.metric_for_best_model, args.greater_is_better)
    if recorded is None or recorded == ours or (state.best_model_checkpoint is None and state.best_metric is None):
        return
    chosen = (f"{resumed_from}: its best checkpoint so far ({state.best_model_checkpoint}, {recorded[0]} "
              f"{state.best_metric}) was chosen by {described(recorded)}, not by this run's --metric_for_best_model / "
              f"--greater_is_better, {described(ours)}")
    if state.max_steps and state.global_step >= state.max_steps:
        logger.warning("warning: %s; no step is left to train, so it is kept; train for more epochs (or with "
                       "--overwrite_output_dir) to choose by %s", chosen, ours[0])
        return
    logger.warning("warning: %s, so it is not used; the model kept at the end is the best by %s of the evaluations "
                   "from here on", chosen, ours[0])
    state.best_model_checkpoint, state.best_global_step, state.best_metric = None, None, None


def described(metric_choice: tuple) -> str:
    """How the warning names a choice: the direction too, since a flipped --greater_is_better is another choice."""
    return f"{metric_choice[0]} ({'higher' if metric_choice[1] else 'lower'} is better)"
