"""Parsing the recipe's flags without inheriting the previous parse's precision.

transformers (before v5, huggingface/transformers#29510) hands `--bf16`/`--fp16`/`--torch_compile` to accelerate
through the process environment (`ACCELERATE_MIXED_PRECISION`, `ACCELERATE_DYNAMO_*`), and the next
`TrainingArguments` reads them back as if `accelerate launch` had set them. So in one process (a notebook, a
sweep, `main()` called twice) a run with `--bf16` made every later run train under bf16 autocast, `--bf16 False`
included, and the trained model's `forward` stayed wrapped in that autocast. Here the variables one parse wrote
are taken back before the next parse reads them, unless something else has set them since; what the process
started with (`accelerate launch --mixed_precision bf16`) is never touched. A command as a whole (`hfspeech
train` from Python, `training.run.main`) puts back, when it ends, the variables and the `AcceleratorState` it found
(`accelerate_state`, `restore_accelerate_state`): the run's Accelerator has read them by then.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

from accelerate.state import AcceleratorState
from transformers import HfArgumentParser

ACCELERATE_PREFIX = "ACCELERATE_"

# name -> (its value before the last parse, the value that parse left); None: not set
_LAST_PARSE_WROTE: dict[str, tuple[Optional[str], Optional[str]]] = {}


def accelerate_variables() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name.startswith(ACCELERATE_PREFIX)}


def undo_last_parse() -> None:
    """Put back what the previous parse changed, where the variable still holds what that parse left."""
    for name, (before, left) in _LAST_PARSE_WROTE.items():
        if os.environ.get(name) != left:  # changed since by the user or another tool: theirs now
            continue
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
    _LAST_PARSE_WROTE.clear()


def parse_into_dataclasses(parser: HfArgumentParser, argv: Sequence[str]) -> tuple:
    """`parser.parse_args_into_dataclasses(argv)` as if no earlier parse had run in this process. The variables
    this parse writes stay set: the run's own `Accelerator`, built later by the Trainer, reads them."""
    undo_last_parse()
    before = accelerate_variables()
    try:
        return tuple(parser.parse_args_into_dataclasses(args=list(argv)))
    finally:
        after = accelerate_variables()
        for name in before.keys() | after.keys():
            if before.get(name) != after.get(name):
                _LAST_PARSE_WROTE[name] = (before.get(name), after.get(name))


def accelerate_state() -> tuple[dict[str, str], dict]:
    """What a training command changes of accelerate's process-wide state: the ACCELERATE_* variables (its parse,
    and transformers' device set-up) and the `AcceleratorState` every `Accelerator` shares, which the run's
    Trainer initialises from them: a later `Accelerator()` reuses it as it is, precision included."""
    return accelerate_variables(), dict(AcceleratorState._shared_state)


def restore_accelerate_state(before: tuple[dict[str, str], dict]) -> None:
    """The variables and the shared state as `accelerate_state()` found them: after a `--bf16` (or `--fp16`,
    `--torch_compile`) command, the user's own Accelerator or Trainer in that process trained under its precision.
    `AcceleratorState._reset_state` is how transformers' `TrainingArguments` clears it before a run, too."""
    variables, shared = before
    for name in accelerate_variables().keys() - variables.keys():
        del os.environ[name]
    os.environ.update(variables)
    AcceleratorState._reset_state()
    AcceleratorState._shared_state.update(shared)
    for name, (_, left) in list(_LAST_PARSE_WROTE.items()):
        if os.environ.get(name) != left:  # undone here: a value set later is the user's, not the next parse's to undo
            del _LAST_PARSE_WROTE[name]
