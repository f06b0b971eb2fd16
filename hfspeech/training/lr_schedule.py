"""The learning-rate schedule of a resumed run: checked against its checkpoint's, and recorded in every checkpoint.

Trainer builds a resumed run's scheduler from this run's flags and takes only the step count from scheduler.pt.
With more epochs or steps the rate jumps to the longer schedule's (an audit: from checkpoint-6 of a 2-epoch linear
run with 3 epochs, step 8 went *up*, 0.00583 -> 0.00778), and with another --lr_scheduler_type the rest of the run
follows another curve; all without a word, and training_hyperparameters.json named only the last schedule.
training_args.bin is a pickle that Trainer never reads back, so each checkpoint gets `lr_schedule.json` (the flags
that shape the schedule, and its lengths). On resume:

- another shape (`SHAPE_FLAGS`; the warmup as the steps it takes, transformers' rule) is refused in one line: the
  steps before and after would follow two curves that no one name describes, and starting over gives whoever wants
  the other shape the whole of it; a record that names no schedule (a hand edit, a cut) is one line naming it;
- another length (epochs, steps, batch size: "train longer") is warned in one line with the rate it changes, and
  recorded: training_hyperparameters.json's `lr_scheduler_type` then reads "linear, 8 steps; resumed at step 4 as 12"
  (`args.lr_schedule_followed`, which `hub.push.finish_run` records).
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Optional

import torch
from transformers import SchedulerType, get_scheduler

from hfspeech.training.checkpoints import CheckpointError

logger = logging.getLogger("hfspeech.train")

SCHEDULE_FILE = "lr_schedule.json"
SHAPE_FLAGS = ("lr_scheduler_type", "lr_scheduler_kwargs", "warmup_ratio", "warmup_steps")
SCHEDULE_NAMES = frozenset(kind.value for kind in SchedulerType)  # what --lr_scheduler_type takes
WARMUP_FLAGS = ("warmup_ratio", "warmup_steps")  # compared as the steps they give (`warmup_of`)
SHAPE_CHECKS = {  # what each flag's recorded value must be for the record to name a schedule (`refuse_damaged`)
    "lr_scheduler_type": (lambda value: value in SCHEDULE_NAMES, "a schedule's name"),
    "lr_scheduler_kwargs": (lambda value: isinstance(value, dict), "an object"),
    "warmup_ratio": (lambda value: type(value) in (int, float) and 0 <= value <= 1, "a number from 0 to 1"),
    "warmup_steps": (lambda value: type(value) is int and value >= 0, "a whole number of steps"),
}


def schedule_shape(args) -> dict:
    """The flags that shape the schedule, as JSON reads them back."""
    kind = getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)
    return json.loads(json.dumps({"lr_scheduler_type": str(kind), "lr_scheduler_kwargs": args.lr_scheduler_kwargs or {},
                                  "warmup_ratio": args.warmup_ratio, "warmup_steps": args.warmup_steps}))


def read_json(path: str) -> Optional[dict]:
    """A checkpoint's JSON record; None where there is none; one line where it is no record (a hand edit, cut short)."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except ValueError as error:
        raise CheckpointError(f"{path}: not valid JSON ({error}); fix or delete it to resume") from None
    if not isinstance(record, dict):
        raise CheckpointError(f"{path}: holds no JSON object; fix or delete it to resume")
    return record


def check_same_schedule(checkpoint: Optional[str], args, way_out: str) -> None:
    """Refuse to resume `checkpoint` with another schedule shape (cheap: before any data is read); a checkpoint of an
    earlier hfspeech, which recorded none, is said not to be checked. The warmup is compared as the steps it takes in
    the checkpoint's schedule (`warmup_of`): `--warmup_steps 2` resumed with another `--warmup_ratio` is the same."""
    if not checkpoint or not os.path.isfile(os.path.join(checkpoint, "trainer_state.json")):
        return
    saved = read_json(os.path.join(checkpoint, SCHEDULE_FILE))
    if saved is None:
        logger.warning("%s: its run recorded no %s (an earlier hfspeech version's run), so this resume is not checked "
                       "against its learning-rate schedule: resume with the --lr_scheduler_type and --warmup_* it was "
                       "trained with", checkpoint, SCHEDULE_FILE)
        return
    refuse_damaged(os.path.join(checkpoint, SCHEDULE_FILE), saved)
    now = schedule_shape(args)
    changed = [flag for flag in SHAPE_FLAGS if flag not in WARMUP_FLAGS and saved[flag] != now[flag]]
    if any(warmup_of(saved, steps) != warmup_of(now, steps) for steps in schedule_lengths(checkpoint, saved)):
        changed += [flag for flag in WARMUP_FLAGS if saved[flag] != now[flag]]
    if changed:
        differences = "; ".join(f"--{flag} {saved[flag]!r} -> {now[flag]!r}" for flag in changed)
        flags = " ".join(f"--{flag} {shell_value(saved[flag])}" for flag in changed)
        raise CheckpointError(f"{checkpoint}: cannot resume with another learning-rate schedule ({differences}): its "
                              "steps followed the checkpoint's and the rest would follow this one, a mix no flag "
                              f"describes; resume with `{flags}`, or {way_out}")


def refuse_damaged(path: str, saved: dict) -> None:
    """One line for a record that holds no schedule a resume could be told to follow (a hand edit, a cut): its
    `"lr_scheduler_type": null` was suggested back as `--lr_scheduler_type None`, which the flags refuse."""
    for flag, (readable, expected) in SHAPE_CHECKS.items():
        if flag not in saved or not readable(saved[flag]):
            held = (f"its {flag} is `{json.dumps(saved[flag])}`, not {expected}" if flag in saved
                    else f"holds no {flag}")
            raise CheckpointError(f"{path}: {held} (cut short or edited); restore it, or delete it to resume unchecked "
                                  "against the checkpoint's learning-rate schedule (with the --lr_scheduler_type and "
                                  "--warmup_* it was trained with)")


def schedule_lengths(checkpoint: str, saved: dict) -> list:
    """The lengths of the schedules the checkpoint's steps followed: each the record holds (a run resumed at another
    length followed two: a warmup the same over the last alone could differ over the steps before), else
    trainer_state.json's; [None] where neither says."""
    lengths = [length for _, length in recorded_lengths(saved) or ()]
    if lengths:
        return lengths
    steps = (read_json(os.path.join(checkpoint, "trainer_state.json")) or {}).get("max_steps")
    return [steps if isinstance(steps, int) else None]


def warmup_of(shape: dict, steps: Optional[int]):
    """The warmup steps `shape` gives a schedule of `steps`, by transformers' rule (`TrainingArguments.
    get_warmup_steps`: --warmup_steps where above 0, else the ratio of the steps, rounded up); with no known length,
    the ratio itself."""
    if shape["warmup_steps"] > 0:
        return shape["warmup_steps"]
    return shape["warmup_ratio"] if steps is None else math.ceil(steps * shape["warmup_ratio"])


def shell_value(value) -> str:
    return f"'{json.dumps(value)}'" if isinstance(value, dict) else str(value)


def learning_rates(args, num_training_steps: int):
    """The rate of each scheduler step of this run's schedule shape over `num_training_steps` (None: a schedule that
    does not go by steps, reduce_lr_on_plateau)."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=args.learning_rate)
    scheduler = get_scheduler(args.lr_scheduler_type, optimizer=optimizer, num_training_steps=num_training_steps,
                              num_warmup_steps=args.get_warmup_steps(num_training_steps),
                              scheduler_specific_kwargs=args.lr_scheduler_kwargs)
    lambdas = getattr(scheduler, "lr_lambdas", None)
    return (lambda step: args.learning_rate * lambdas[0](step)) if lambdas else None


def resumed_lengths(checkpoint: Optional[str], args, num_training_steps: int) -> list:
    """[[step, steps]]: the lengths of the schedules the run followed, from which step; warned where this run's length
    differs from the checkpoint's, naming the first step whose rate it changes."""
    state = read_json(os.path.join(checkpoint, "trainer_state.json")) if checkpoint else None
    if not state or not isinstance(state.get("max_steps"), int):
        return [[0, num_training_steps]]
    saved = read_json(os.path.join(checkpoint, SCHEDULE_FILE)) or {}
    lengths = recorded_lengths(saved) or [[0, state["max_steps"]]]
    old, step = lengths[-1][1], int(state.get("global_step") or 0)
    refuse_other_warmup_at(checkpoint, saved, args, num_training_steps)
    old_rates, new_rates = learning_rates(args, old), learning_rates(args, num_training_steps)
    later_steps = range(step + 1, num_training_steps) if old_rates else ()  # step k sets step k+1's rate: this run's
    first = next((k for k in later_steps if not math.isclose(old_rates(k), new_rates(k))), None)
    if first is None:
        return lengths
    lengths = [*lengths, [step, num_training_steps]]
    logger.warning("%s: resumed with %d training steps instead of %d (%s): from step %d the learning rate follows "
                   "this run's %d-step %s schedule, not the %d-step one its first %d steps followed (%.3g -> %.3g at "
                   "step %d); recorded as lr_scheduler_type %r", checkpoint, num_training_steps, old,
                   length_changes(state, args), first + 1, num_training_steps,
                   schedule_shape(args)["lr_scheduler_type"], old, step, old_rates(first), new_rates(first), first + 1,
                   described(args, lengths))
    return lengths


def refuse_other_warmup_at(checkpoint: str, saved: dict, args, num_training_steps: int) -> None:
    """The warmup this run's flags give over its own length, which `check_same_schedule` could not know before the
    data was read: another form of the same warmup over the checkpoint's lengths (`--warmup_steps 2` for a ratio of
    0.25 over 8 steps) may differ over the new one (3 steps over 12), the rest following a curve no flag named and
    the run's own flags refused at the next resume (review R3)."""
    now = schedule_shape(args)
    if all(flag in saved for flag in WARMUP_FLAGS) and warmup_of(saved, num_training_steps) != warmup_of(
            now, num_training_steps):
        flags = " ".join(f"--{flag} {saved[flag]}" for flag in WARMUP_FLAGS if saved[flag] != now[flag])
        raise CheckpointError(f"{checkpoint}: cannot resume with another warmup over this run's {num_training_steps} "
                              f"steps ({warmup_of(saved, num_training_steps)} -> {warmup_of(now, num_training_steps)} "
                              f"warmup steps): resume with `{flags}`, or start over (--overwrite_output_dir)")


def recorded_lengths(saved: dict) -> Optional[list]:
    """The record's [[step, steps]] pairs; None where it holds none that read as such (a hand edit)."""
    lengths = saved.get("lengths")
    if isinstance(lengths, list) and lengths and all(
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(n, int) for n in pair) for pair in lengths):
        return lengths
    return None


def length_changes(state: dict, args) -> str:
    """What gave this run's schedule another length, as far as the checkpoint's trainer_state.json shows."""
    changes = []
    if args.max_steps > 0 and state["max_steps"] != args.max_steps:
        changes.append(f"--max_steps {args.max_steps}")
    elif args.max_steps <= 0 and state.get("num_train_epochs") not in (None, math.ceil(args.num_train_epochs)):
        changes.append(f"--num_train_epochs {state['num_train_epochs']} -> {args.num_train_epochs:g}")
    if state.get("train_batch_size") not in (None, args.train_batch_size):
        changes.append(f"batch size {state['train_batch_size']} -> {args.train_batch_size}")
    return ", ".join(changes) or "other steps per epoch"


def described(args, lengths: list) -> str:
    """The schedule's name, and where it changed length: what training_hyperparameters.json and the card record."""
    kind = schedule_shape(args)["lr_scheduler_type"]
    if len(lengths) < 2:
        return kind
    resumes = "; ".join(f"resumed at step {step} as {steps}" for step, steps in lengths[1:])
    return f"{kind}, {lengths[0][1]} steps; {resumes}"


class NoStepPastTheEnd:
    """Trainer mixin: a run resumed at its schedule's last step takes none. Trainer skips the batches the checkpoint's
    epoch had trained and then trains the next one before it checks `max_steps`, so where the last step fell inside
    an epoch (`--max_steps 6` at 4 steps an epoch; fractional epochs), the same command run again into the finished
    run trained a step more (checkpoint-7: its weights and test numbers changed) where `train_session` expected none
    and said "nothing left to train" only where the end fell on an epoch's end."""

    stopped_at_the_end = False

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        if 0 < self.state.max_steps <= self.state.global_step:
            self.control.should_training_stop = self.stopped_at_the_end = True  # the loops end, as after the last step
            return [], None
        return super().get_batch_samples(epoch_iterator, num_batches, device)

    def _maybe_log_save_evaluate(self, *args, **kwargs):
        """Nothing at the end of that epoch either: it evaluated again and rewrote the last checkpoint (review R4)."""
        if self.stopped_at_the_end:
            self.control.should_log = self.control.should_evaluate = self.control.should_save = False
            return None
        return super()._maybe_log_save_evaluate(*args, **kwargs)


class RecordedSchedule(NoStepPastTheEnd):
    """Trainer mixin (taking no step past the schedule's end, too): writes `lr_schedule.json` into each checkpoint,
    warns of a resumed run's other schedule length (`resumed_lengths`) and, once trained, names the schedules it
    followed in `args.lr_schedule_followed` (what training_hyperparameters.json records as its lr_scheduler_type; a
    plain attribute, so training_args.bin keeps a valid `lr_scheduler_type` for whoever loads it into a Trainer)."""

    schedule_lengths: Optional[list] = None
    resumed_from: Optional[str] = None

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        from transformers.trainer_utils import get_last_checkpoint
        if isinstance(resume_from_checkpoint, bool):
            self.resumed_from = get_last_checkpoint(self.args.output_dir) if resume_from_checkpoint else None
        else:
            self.resumed_from = resume_from_checkpoint
        result = super().train(resume_from_checkpoint, *args, **kwargs)
        if self.schedule_lengths and len(self.schedule_lengths) > 1:  # not in lr_scheduler_type: an enum's field
            self.args.lr_schedule_followed = described(self.args, self.schedule_lengths)
        return result

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None:
            self.schedule_lengths = resumed_lengths(self.resumed_from, self.args, num_training_steps)
        return super().create_scheduler(num_training_steps, optimizer)

    def _save_checkpoint(self, model, trial, *args, **kwargs):
        result = super()._save_checkpoint(model, trial, *args, **kwargs)
        folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
        if self.args.should_save and self.schedule_lengths and os.path.isdir(folder):
            record = {**schedule_shape(self.args), "lengths": self.schedule_lengths}
            with open(os.path.join(folder, SCHEDULE_FILE), "w", encoding="utf-8") as f:
                json.dump(record, f, indent=2)
        return result

