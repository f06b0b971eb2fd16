"""What each process of a multi-process run did, for checking that all of them trained together; and
`ResumableOnCpuProcesses`, which lets a run of several CPU processes resume from its checkpoints.

`accelerate launch --num_processes N recipes/finetune.py ...` runs N copies of the recipe joined in one
DDP group; only process 0 writes the run's outputs (model, metrics.json, reports). With the
environment variable `HFSPEECH_RANK_MARKERS=DIR` set, every process also writes `DIR/rank<i>.json` at
the end of training: its rank, the world size, the optimizer steps it took, the number of batches
per epoch of its own DataLoader (when it has a length), and a checksum of its model's parameters. DDP keeps the parameters of all
processes equal, so equal checksums with distinct ranks and a step count that fits the data split N
ways show that the processes trained as one -- what `tests/test_distributed.py` checks.

Where a run's processes must agree before they go on (the data, the checkpoint to resume), their values are gathered
(`values_of_every_process`), and a step that may fail on one process alone is taken through `agreed`: its one-line
error travels in a gather too, and every process stops with it.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, TypeVar

import torch
from transformers import TrainerCallback

from hfspeech.data.system_libraries import missing_system_library
from hfspeech.errors import HfspeechError
from hfspeech.machine_refusals import machine_refusal

RANK_MARKERS_ENV = "HFSPEECH_RANK_MARKERS"


class RankMarkerCallback(TrainerCallback):
    """Writes `rank<i>.json` into `folder` when training ends (see the module docstring)."""

    def __init__(self, folder: str):
        self.folder = Path(folder)
        self.batches_per_epoch = None

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        try:
            self.batches_per_epoch = len(train_dataloader)
        except TypeError:  # a stream has no length
            self.batches_per_epoch = None
        return control

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.folder.mkdir(parents=True, exist_ok=True)
        checksum = float(sum(p.detach().double().sum().item() for p in model.parameters())) if model else None
        marker = {
            "rank": args.process_index,
            "world_size": args.world_size,
            "global_step": state.global_step,
            "batches_per_epoch": self.batches_per_epoch,
            "parameter_checksum": checksum,
            "distributed": torch.distributed.is_available() and torch.distributed.is_initialized(),
        }
        (self.folder / f"rank{args.process_index}.json").write_text(json.dumps(marker, indent=2), encoding="utf-8")
        return control


def rank_marker_callbacks() -> list[TrainerCallback]:
    """`[RankMarkerCallback]` when `HFSPEECH_RANK_MARKERS` names a folder, else nothing."""
    folder = os.environ.get(RANK_MARKERS_ENV)
    return [RankMarkerCallback(folder)] if folder else []


class ResumableOnCpuProcesses:
    """A Trainer mixin: resuming a run of several CPU processes (gloo) failed with a torch traceback.

    accelerate names each CPU process's device `cpu:<index>`, and transformers loads the optimizer state of a
    multi-process run with `map_location=args.device`, which `torch.load` cannot restore to ("don't know how to
    restore data location ... (tagged with cpu:0)"). While the optimizer and scheduler are loaded, the device
    reads as plain `cpu` (the same memory); everything else in transformers' loading stays as it is."""

    def _load_optimizer_and_scheduler(self, checkpoint):
        with plain_cpu_device(self.args):
            return super()._load_optimizer_and_scheduler(checkpoint)


@contextmanager
def plain_cpu_device(args) -> Iterator[None]:
    """`args.device` is `cpu` instead of `cpu:<index>` inside the block (a no-op for any other device).
    `TrainingArguments.device` reads the cached property `_setup_devices`, whose value lives in `__dict__`."""
    device = args.device
    if device.type != "cpu" or device.index is None:
        yield
        return
    args.__dict__["_setup_devices"] = torch.device("cpu")
    try:
        yield
    finally:
        args.__dict__["_setup_devices"] = device


def processes_in_group() -> int:
    """How many processes this one's torch.distributed group joins (1 where it joined none: one process)."""
    joined = torch.distributed.is_available() and torch.distributed.is_initialized()
    return torch.distributed.get_world_size() if joined else 1


def values_of_every_process(value) -> list:
    """`value` as each process of the run holds it, by global rank (`[value]` in a run of one process): for
    checks that every process, on every machine, sees the same thing before they train together (a checkpoint to
    resume, the data), where a difference would otherwise pair their collectives on different states. A
    collective: every process must call it at the same point."""
    if processes_in_group() == 1:
        return [value]
    values = [None] * processes_in_group()
    torch.distributed.all_gather_object(values, value)
    return values


Value = TypeVar("Value")


def agreed(step: Callable[[], Value]) -> Value:
    """`step()`'s value, or on every process of the run the same one-line error where a process's step raised one: an
    `HfspeechError` (a bad clip in its machine's copy of the data, a Hub token missing there), what its machine
    refused (`machine_refusals`: memory short, a full or read-only disk there, a path it may not read, an optional
    package or a system library missing there). The line is said as that process said it where every process said it,
    else `process 1 (machine 1): <its line>` (each distinct line so, `; ` between: the first alone pointed at machine 0
    where machine 1 also lacked its model). Any other error (a bug) keeps its traceback on its process, and the others
    say which process failed, and with what (`unexpected`); a process stopped in its step (Ctrl-C, `sys.exit`) stops
    as it would alone, and the others say so (`stopped`). A process that failed alone used to leave while the others
    waited in their next collective: gloo's "Connection closed by peer" traceback there (NCCL: a hang until
    --ddp_timeout). A collective in a run of several processes: every process calls it at the same point, and `step`
    takes part in none (but a `main_process_first` around all of it, whose barriers run whether it fails or not). In
    a run of one process, `step()` alone."""
    if processes_in_group() == 1:
        return step()
    value, problem, own, outcome = taken(step)
    try:
        gathered = values_of_every_process((machine_of_this_process(), outcome))
    except Exception:
        if isinstance(own, (KeyboardInterrupt, SystemExit)):  # the others stopped too and left: stop as asked
            raise own from None
        raise
    if own is not None:
        raise own  # its traceback (a bug), or its stop, on its own process
    failed = [(rank, *outcome) for rank, (_, outcome) in enumerate(gathered) if outcome]
    if not failed:
        return value
    machines, kind, line = [machine for machine, _ in gathered], failed[0][1], failed[0][2]
    if len(failed) < len(gathered) or any(other != line for _, _, other in failed):
        first_of_each = {}  # each distinct line once, after the first process that said it
        for rank, _, said_line in failed:
            first_of_each.setdefault(said_line, rank)
        line = "; ".join(f"{process_named(rank, machines)}: {text}" for text, rank in first_of_each.items())
    raise kind(line) from problem


def taken(step: Callable[[], Value]) -> tuple:
    """(value, problem, own, outcome) of `step()` on this process: `problem` the one-line error every process may say,
    `own` what only this process raises again after the gather (a bug, a stop), `outcome` what the others are told
    ((class, line), or None where it went well). Nothing raised here escapes before the gather: an error whose str()
    raised, or a Ctrl-C, left the others waiting in it."""
    try:
        return step(), None, None, None
    except HfspeechError as error:
        return None, error, None, said(error)
    except Exception as error:  # noqa: BLE001 (said to the others; a bug is raised again after the gather)
        problem = refusal_of_machine(error)
        if problem is None:
            return None, None, error, unexpected(error)
        problem.__cause__ = error  # (`--debug` shows the library's traceback behind the line)
        return None, problem, None, said(problem)
    except (KeyboardInterrupt, SystemExit) as stop:
        return None, None, stop, stopped(stop)


TRAINING = "train"  # the command whose flags lower a step's memory (distill's and cross-validate's: the same)


def refusal_of_machine(error: Exception) -> Optional[HfspeechError]:
    """What this process's machine refused, in the line a run of one process says for it (the CLI's catch-all:
    `machine_refusals`, and a system library missing there, `data.system_libraries`); None for a bug, or where
    looking at the error raised (an error whose str() raises)."""
    command = command_of_this_process()
    try:
        return machine_refusal(error, command) or missing_system_library(error, command)
    except Exception:  # noqa: BLE001 (a bug after all: `unexpected` names it)
        return None


def command_of_this_process() -> str:
    """The hfspeech command this process runs (`distill`, `cross-validate`: the CLI's argv), which its lines name as
    the CLI does in a run of one process; `train` for `recipes/finetune.py` and anything else."""
    named = next((arg for arg in sys.argv[1:] if arg != "--debug"), "")  # `hfspeech --debug distill`; not a value
    return named if named in ("train", "distill", "cross-validate") else TRAINING


def unexpected(bug: Exception) -> tuple[type, str]:
    """A bug on this process, as the others say it: what it is (its type and the first line of its message) and where
    its traceback is, in place of gloo's "Connection closed by peer" (this process raises it again, traceback and
    all, after the gather). A message that cannot be read is said in Python's own words for it."""
    message = readable_message(bug).strip()
    message = message.splitlines()[0][:200] if message else ""
    return HfspeechError, (f"failed with {type(bug).__name__}{': ' * bool(message)}{message} (an unexpected error: its "
                           "traceback is in that process's output)")


def readable_message(error: BaseException) -> str:
    """`str(error)`, or where that raises, `<exception str() failed>` (as Python's traceback says it)."""
    try:
        return str(error)
    except Exception:  # noqa: BLE001
        return "<exception str() failed>"


def stopped(stop: BaseException) -> tuple[type, str]:
    """A process stopped in its step (`KeyboardInterrupt`: Ctrl-C or SIGINT to it alone; `SystemExit`: a library's
    `sys.exit`), as the others say it: `stopped (KeyboardInterrupt)`, `stopped (SystemExit: 3)`. It stops as it would
    alone (the CLI's `interrupted`, its exit code)."""
    code = getattr(stop, "code", None)
    return HfspeechError, f"stopped ({type(stop).__name__}{'' if code is None else f': {code}'})"


def said(error: HfspeechError) -> tuple[type, str]:
    """The error's class and its one line, for every process to raise: `HfspeechError` where the class cannot
    travel (defined in a function) or be made again from a line alone."""
    kind, line = type(error), str(error)
    try:
        remade = str(pickle.loads(pickle.dumps(kind))(line)) == line
    except Exception:  # a constructor of its own (other arguments)
        remade = False
    return (kind if remade else HfspeechError), line


def machine_of_this_process() -> Optional[int]:
    """The machine rank torchrun (`accelerate launch`) gives this process's machine (`GROUP_RANK`); None outside."""
    value = os.environ.get("GROUP_RANK", "")
    return int(value) if value.isdigit() else None


def process_named(rank: int, machines: list) -> str:
    """'process 2 (machine 1)': which process, on which machine, a refusal is about."""
    machine = machines[rank] if rank < len(machines) else None
    return f"process {rank}" + (f" (machine {machine})" if machine is not None else "")
