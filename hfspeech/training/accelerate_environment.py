"""Parsing the recipe's flags without inheriting the previous parse's precision.

transformers (before v5, huggingface/transformers#29510) hands `--bf16`/`--fp16`/`--torch_compile` to accelerate
through the process environment (`ACCELERATE_MIXED_PRECISION`, `ACCELERATE_DYNAMO_*`), and the next
`TrainingArguments` reads them back as if `accelerate launch` had set them. So in one process (a notebook, a
sweep, `main()` called twice) a run with `--bf16` made every later run train under bf16 autocast, `--bf16 False`
included, and the trained model's `forward` stayed wrapped in that autocast. Here the variables one parse wrote
are taken back before the next parse reads them, unless something else has set them since; what the process
started with (`accelerate launch --mixed_precision bf16`) is never touched. A command as a whole (`hfspeech
train` from Python, `training.run.main`) puts back, when it ends, the variables it found and runs on its own copy of
accelerate's shared state (`accelerate_state_kept`): the run's Accelerator has read them by then.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional, Sequence

from accelerate.state import AcceleratorState, GradientState, PartialState
from transformers import HfArgumentParser

ACCELERATE_PREFIX = "ACCELERATE_"
# accelerate's process-wide states ("Borg" classes): every instance's `__dict__` is its class's `_shared_state`
SHARED_STATES = (PartialState, AcceleratorState, GradientState)

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


@contextlib.contextmanager
def accelerate_state_kept() -> Iterator[None]:
    """The ACCELERATE_* variables put back when the block ends, and accelerate's shared states swapped for copies
    while it runs. A run's `TrainingArguments` clears and refills them (`_reset_state`) and its Trainer's Accelerator
    reads them; a caller's Accelerator made before shares those very dicts, so it took the run's device
    (`PartialState._cpu`, which the caller's next `Accelerator()` also merged in), precision and accumulation
    (`GradientState.plugin_kwargs`: 4 read back as 1). On a copy the run starts from what the caller had
    (`use_configured_state` included) and changes only its own, which its objects (its TrainingArguments'
    `distributed_state`) keep; the caller's dicts are never touched. A process group the run joined (`accelerate
    launch`, torchrun) is torch's, not in these dicts: `hfspeech.cli.main` leaves it after the command (a group the
    caller joined stays), and the caller's next Accelerator joins one or finds it, where the run's state claimed a
    group already left (its first collective: "Default process group has not been initialized")."""
    variables = accelerate_variables()
    # one of several processes (`launched_process`): its group and states are the launch's, left as they were
    callers = {} if launched_process() else {state: state.__dict__["_shared_state"] for state in SHARED_STATES}
    contents = {state: dict(shared) for state, shared in callers.items() if type(shared) is not dict}
    for state, shared in callers.items():
        if type(shared) is dict:  # under torch_xla a per-thread holder (accelerate's ThreadLocalSharedDict)
            state._shared_state = dict(shared)
    try:
        yield
    finally:
        restore_accelerate_variables(variables)
        for state, shared in callers.items():
            if type(shared) is dict:
                state._shared_state = shared
            else:  # in place, as transformers' `_reset_state` does: the run's objects see the caller's state after
                state._shared_state.clear()
                state._shared_state.update(contents[state])


def launched_process() -> bool:
    """Whether this is one of several processes (`accelerate launch`, torchrun): no notebook's own state to keep, and
    a process group whose teardown at exit has aborted processes (session 34), so its states are not swapped."""
    return int(os.environ.get("WORLD_SIZE", "1") or "1") > 1


def restore_accelerate_variables(variables: dict[str, str]) -> None:
    """The ACCELERATE_* variables as they were: after a `--bf16` (or `--fp16`, `--torch_compile`) command, the
    user's own Accelerator or Trainer in that process trained under its precision."""
    for name in accelerate_variables().keys() - variables.keys():
        del os.environ[name]
    os.environ.update(variables)
    for name, (_, left) in list(_LAST_PARSE_WROTE.items()):
        if os.environ.get(name) != left:  # undone here: a value set later is the user's, not the next parse's to undo
            del _LAST_PARSE_WROTE[name]
