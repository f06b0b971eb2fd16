"""Which processes of a run launched on several machines write to the same --output_dir, and one answer for all.

`accelerate launch --num_machines M` runs each machine's processes with --output_dir as that machine sees it: one
folder every machine shares (a network file system), or a folder on each machine's own disk. transformers saves a
checkpoint from process 0 alone (from each machine's first process with `--save_on_each_node`), and every process
writes its own `rng_state_<rank>.pth` into `checkpoint-N/`. On its own disk, machine 1 is left with checkpoint
folders holding nothing but that file, which transformers' rotation (process 0's) never removes.

Whether a folder is shared is found out, not guessed from its path: each machine's first process writes a marker
with a random name into the folder, and every process says which markers it sees (`folder_sharing`: two
collectives). A decision taken from gathered values is the same on every process, so a refusal stops all of them
with the same line (exit 2) instead of one process raising while the others wait in a collective until gloo's
timeout.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from hfspeech.output_folders import unusable_folder_name
from hfspeech.training.distributed import (machine_of_this_process, process_named, processes_in_group,
                                          values_of_every_process)

PROBE_PREFIX = ".hfspeech-machine-probe-"  # removed once every process has looked; a killed run's is ours too
RNG_STATE_FILE = re.compile(r"^rng_state_(\d+)\.pth$")
NODE_LOCAL_REMEDY = ("(an output folder on each machine's own disk): use a --output_dir every machine shares, or "
                     "--save_on_each_node")


def rng_states_only(folder: str | os.PathLike) -> list[str]:
    """The `rng_state_<rank>.pth` names of a folder that holds nothing else ([] otherwise, or if it is empty)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    return names if names and all(RNG_STATE_FILE.match(name) for name in names) else []


@dataclass
class FolderSharing:
    """By global rank: each process's machine, and the first processes of machines whose folder it sees as its own."""

    machines: list
    sees: list[list[int]]
    created: list[Path]  # the folders this process made for its marker, deepest first

    def remove_created(self) -> None:
        """Where the run stops at once: the folders made for the markers, still empty, removed (not while a process
        may hold the folder: it may be empty but locked)."""
        for path in self.created:
            with contextlib.suppress(OSError):  # not empty: kept
                path.rmdir()

    def sees_process_zero(self, rank: int) -> bool:
        return 0 in self.sees[rank]

    def apart_from_process_zero(self) -> set[int]:
        """The processes whose folder is not process 0's (each machine's own disk)."""
        return {rank for rank in range(len(self.sees)) if not self.sees_process_zero(rank)}

    def machines_sharing(self) -> Optional[tuple[int, int]]:
        """Two machines' first processes that write to one folder (`--save_on_each_node` saves twice there)."""
        for rank, seen in enumerate(self.sees):
            others = [other for other in seen if other != rank and self.machines[other] != self.machines[rank]]
            if others:
                return min(rank, others[0]), max(rank, others[0])
        return None


def folder_sharing(output_dir: str, is_local_main: bool) -> Optional[FolderSharing]:
    """Who sees whose --output_dir (None in a run of one process). A collective: every process calls it at the same
    point, before any of them takes the folder's lock."""
    if processes_in_group() == 1:
        return None
    created = [path for path in (Path(output_dir), *Path(output_dir).parents) if not path.exists()]
    marker = write_marker(output_dir) if is_local_main else None
    try:
        gathered = values_of_every_process((machine_of_this_process(), marker and marker.name))
        sees = [rank for rank, (_, name) in enumerate(gathered)
                if name and os.path.exists(os.path.join(output_dir, name))]
        return FolderSharing([machine for machine, _ in gathered], values_of_every_process(sees), created)
    finally:  # every process has looked (the second gather), or the run stops: never left in a folder (R3)
        if marker is not None:
            with contextlib.suppress(OSError):
                marker.unlink()


def write_marker(output_dir: str) -> Optional[Path]:
    """A new empty file with a random name in `output_dir`; None where it cannot be written (the run's own first
    write there then says why, as in one process)."""
    if unusable_folder_name(output_dir) is not None:  # refused by `held_alone`: not made here first
        return None
    marker = Path(output_dir) / f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    try:
        os.makedirs(output_dir, exist_ok=True)
        marker.touch(exist_ok=False)
    except OSError:
        return None
    return marker


def save_on_each_node_refusal(sharing: Optional[FolderSharing], output_dir: str) -> Optional[str]:
    """`--save_on_each_node` on a folder two machines share: both machines' first processes would save the same
    checkpoint files there at once (and both take the folder's lock: the second one lost)."""
    pair = sharing.machines_sharing() if sharing else None
    if pair is None:
        return None
    first, second = pair
    return (f"--output_dir {output_dir}: --save_on_each_node is for an output folder on each machine's own disk, but "
            f"{process_named(first, sharing.machines)} and {process_named(second, sharing.machines)} write to this one "
            "(a shared file system): drop --save_on_each_node, process 0 then saves for every machine")


def remove_rng_only_checkpoints(output_dir: str, ranks: set[int], checkpoint_name: re.Pattern) -> list[str]:
    """The checkpoint folders of `output_dir` that hold only `rng_state_<rank>.pth` files of processes `ranks` (those
    whose folder is not process 0's), removed: the RNG states processes write beside a checkpoint that process 0
    saves on another machine's disk, useless without it (two processes on a machine: both of theirs, R3)."""
    removed = []
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(output_dir)):
            folder = os.path.join(output_dir, name)
            states = {int(RNG_STATE_FILE.match(state)[1]) for state in rng_states_only(folder)}
            if checkpoint_name.match(name) and states and states <= ranks:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(name)
    return removed
