"""Two machines of one launched run, simulated on this host: `accelerate launch --num_machines 2 --machine_rank 0|1`
started twice with the same port, each machine in its own working folder with its own datasets cache, so that a
relative `--output_dir runs/x` is a folder on each machine's own disk, and an absolute one a folder both share.

Machine 1 of a run without `--save_on_each_node` keeps only `rng_state_1.pth` in each checkpoint folder; resumed,
it started over while machine 0 resumed (their optimizers apart, then both hung). `--save_on_each_node` into a
shared folder lost one machine to the output-folder lock. Either now stops both machines with the same line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

import pytest
import torch
from safetensors.torch import save_file

from hfspeech.training.checkpoints import (CheckpointError, agreed_checkpoint, incomplete_reason,
                                           last_complete_checkpoint, this_process_choice)
from hfspeech.training.machine_folders import FolderSharing, remove_rng_only_checkpoints, save_on_each_node_refusal
from tests.conftest import TINY_CNN
from tests.test_distributed import REPO, free_port

NODE_LOCAL = ("(an output folder on each machine's own disk): use a --output_dir every machine shares, or "
              "--save_on_each_node")


def launch_two_machines(tmp_path: Path, data_dir: Optional[Path], recipe_args: list[str],
                        program: Sequence[str] = ()) -> list[tuple[int, str]]:
    """Both machines' launchers, run at once: (exit status, output) by machine rank. `program`: what each launches
    in place of `recipes/finetune.py --data_dir DATA_DIR` (`-m hfspeech.cli cross-validate --train_file ...`)."""
    port, launchers = str(free_port()), []
    program = list(program) or [str(REPO / "recipes" / "finetune.py"), "--data_dir", str(data_dir)]
    for machine in (0, 1):
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2",
                   "--num_processes", "2", "--machine_rank", str(machine), "--main_process_ip", "127.0.0.1",
                   "--main_process_port", port, "--mixed_precision", "no", "--dynamo_backend", "no",
                   *program, "--config_overrides", TINY_CNN, "--max_length_seconds", "0.5", "--num_train_epochs", "3",
                   "--ddp_timeout", "30", "--disable_tqdm", "True", *recipe_args]
        env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
               "HF_DATASETS_CACHE": str(tmp_path / f"cache{machine}")}
        (tmp_path / f"m{machine}").mkdir(exist_ok=True)
        launchers.append(subprocess.Popen(command, cwd=tmp_path / f"m{machine}", env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    try:
        return [(launcher.wait(timeout=150), launcher.stdout.read()) for launcher in launchers]
    finally:
        for launcher in launchers:
            launcher.kill()


def complete_checkpoint(folder: Path, step: int) -> Path:
    """What incomplete_reason takes for whole: trainer_state.json of its step and readable weights."""
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    save_file({"weight": torch.zeros(2)}, str(folder / "model.safetensors"))
    return folder


def rng_state_only(folder: Path, rank: int = 1) -> Path:
    """What machine 1 is left with on its own disk: its RNG state, nothing else."""
    folder.mkdir(parents=True)
    (folder / f"rng_state_{rank}.pth").write_bytes(b"rng")
    return folder


def exited_on_the_line(output: str) -> bool:
    """The worker exited 2 after its one line; or, now and then (R3: 1 launch in 4), gloo's threads aborted it as it
    left ("terminate called without an active exception", SIGABRT: `cli.leave_process_group`), the line said."""
    return "exitcode  : 2" in output or "SIGABRT" in output


def test_machines_resuming_from_different_checkpoints_both_stop_with_one_line(tone_folder, tmp_path):
    complete_checkpoint(tmp_path / "m0" / "runs" / "x" / "checkpoint-8", 8)
    rng_state_only(tmp_path / "m1" / "runs" / "x" / "checkpoint-8")
    results = launch_two_machines(tmp_path, tone_folder, ["--output_dir", "runs/x"])
    line = (f"error: process 1 (machine 1) cannot resume from runs/x/checkpoint-8: it sees only rng_state_1.pth "
            f"there {NODE_LOCAL}")
    for status, output in results:  # the same line from both machines, and no worker's traceback
        assert status != 0 and line in output.splitlines(), output[-3000:]
        assert exited_on_the_line(output) and "ProcessGroupGloo" not in output, output[-3000:]


def test_save_on_each_node_into_a_shared_folder_is_refused_on_every_machine(tone_folder, tmp_path):
    shared = tmp_path / "shared" / "x"
    results = launch_two_machines(tmp_path, tone_folder, ["--output_dir", str(shared), "--save_on_each_node"])
    for status, output in results:
        assert status != 0 and exited_on_the_line(output), output[-3000:]
        assert (f"error: --output_dir {shared}: --save_on_each_node is for an output folder on each machine's own "
                "disk, but process 0 (machine 0) and process 1 (machine 1) write to this one") in output, output[-3000:]
    assert not shared.exists() or not any(shared.iterdir())  # no marker left behind


def test_a_folder_with_only_rng_state_is_not_called_interrupted(tmp_path):
    reason = incomplete_reason(str(rng_state_only(tmp_path / "checkpoint-8")))
    assert reason.startswith("only rng_state_1.pth in it") and "interrupted" not in reason
    assert incomplete_reason(str(complete_checkpoint(tmp_path / "checkpoint-4", 4))) is None


class Args:
    """The TrainingArguments fields `this_process_choice` reads."""

    def __init__(self, output_dir, resume_from_checkpoint=None, should_save=False):
        self.output_dir, self.resume_from_checkpoint, self.should_save = output_dir, resume_from_checkpoint, should_save


def gathered_from(monkeypatch, *folders: Path, named=None) -> list:
    """What `values_of_every_process` returns where machine i runs in `folders[i]` with `--output_dir .` (and
    `--resume_from_checkpoint named`): the same flags, each machine's own folder."""
    gathered = []
    for machine, folder in enumerate(folders):
        folder.mkdir(parents=True, exist_ok=True)
        monkeypatch.chdir(folder)
        gathered.append((machine, *this_process_choice(Args(".", named))))
    return gathered


def test_each_machine_choice_gathered_decides_the_same_for_all(tmp_path, monkeypatch):
    m0, m1 = tmp_path / "m0", tmp_path / "m1"
    complete_checkpoint(m0 / "checkpoint-8", 8)
    complete_checkpoint(m1 / "checkpoint-4", 4)
    rng_state_only(m1 / "checkpoint-8")
    with pytest.raises(CheckpointError, match="^process 1 \\(machine 1\\) cannot resume from ./checkpoint-8: it sees "
                       "only rng_state_1.pth there \\(an output folder on each machine's own disk\\)"):
        agreed_checkpoint(gathered_from(monkeypatch, m0, m1))
    assert last_complete_checkpoint(str(m1), remove_incomplete=False) == str(m1 / "checkpoint-4")  # kept: not saving
    agreed_checkpoint(gathered_from(monkeypatch, m0, m0))  # a folder both share: the same choice, no refusal


def test_a_checkpoint_cut_short_on_one_machine_asks_for_one_every_machine_holds(tmp_path, monkeypatch):
    m0, m1 = tmp_path / "m0", tmp_path / "m1"
    complete_checkpoint(m0 / "checkpoint-8", 8)
    (m1 / "checkpoint-8").mkdir(parents=True)
    (m1 / "checkpoint-8" / "optimizer.pt").write_bytes(b"")  # --save_on_each_node, killed while saving
    with pytest.raises(CheckpointError, match="^process 1 \\(machine 1\\) cannot resume from .*: it is incomplete "
                       "there \\(no trainer_state.json .*pass --resume_from_checkpoint with one every machine holds"):
        agreed_checkpoint(gathered_from(monkeypatch, m0, m1))
    with pytest.raises(CheckpointError, match="^process 1 \\(machine 1\\) cannot resume from checkpoint-8: there is no "
                       "such folder on its machine \\(an output folder on each machine's own disk\\)"):
        agreed_checkpoint(gathered_from(monkeypatch, m0, tmp_path / "empty", named="checkpoint-8"), "checkpoint-8")


def test_the_same_problem_everywhere_is_said_as_one_process_says_it(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="^checkpoint-8: --resume_from_checkpoint folder not found$"):
        agreed_checkpoint(gathered_from(monkeypatch, tmp_path, tmp_path, named="checkpoint-8"), "checkpoint-8")


def test_rng_only_folders_of_this_process_are_removed_and_nothing_else(tmp_path):
    for step in (4, 8):
        rng_state_only(tmp_path / f"checkpoint-{step}")
    rng_state_only(tmp_path / "checkpoint-12", rank=0)  # another process's: not this one's to remove
    complete_checkpoint(tmp_path / "checkpoint-16", 16)
    (tmp_path / "checkpoint-16" / "rng_state_1.pth").write_bytes(b"rng")
    from hfspeech.training.checkpoints import CHECKPOINT_NAME

    assert remove_rng_only_checkpoints(str(tmp_path), {1}, CHECKPOINT_NAME) == ["checkpoint-4", "checkpoint-8"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-12", "checkpoint-16"]


def test_rng_only_folders_of_two_processes_of_a_machine_are_removed(tmp_path):
    """Two processes on machine 1 (ranks 2 and 3) each wrote their RNG state: neither's alone (reviewer R3)."""
    rng_state_only(tmp_path / "checkpoint-4", rank=2)
    (tmp_path / "checkpoint-4" / "rng_state_3.pth").write_bytes(b"rng")
    from hfspeech.training.checkpoints import CHECKPOINT_NAME

    apart = FolderSharing([0, 0, 1, 1], [[0], [0], [2], [2]], []).apart_from_process_zero()
    assert apart == {2, 3} and remove_rng_only_checkpoints(str(tmp_path), apart, CHECKPOINT_NAME) == ["checkpoint-4"]


def test_a_probe_left_beside_the_users_files_does_not_make_them_a_run_folder(tmp_path):
    """A probe a failed multi-machine launch left made a folder of the user's pass as a run's (reviewer R3)."""
    from hfspeech.training.checkpoints import check_output_dir
    from hfspeech.training.machine_folders import PROBE_PREFIX

    (tmp_path / f"{PROBE_PREFIX}0123").write_bytes(b"")
    check_output_dir(str(tmp_path))  # a probe alone: a folder a launch just made
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="holds other files"):
        check_output_dir(str(tmp_path))


def test_save_on_each_node_is_refused_only_where_two_machines_share_the_folder():
    # 4 processes on 2 machines; the first process of each machine (0 and 2) wrote a marker.
    own_disks = FolderSharing([0, 0, 1, 1], [[0], [0], [2], [2]], [])
    assert save_on_each_node_refusal(own_disks, "runs/x") is None and not own_disks.sees_process_zero(3)
    shared = FolderSharing([0, 0, 1, 1], [[0, 2]] * 4, [])
    assert "process 0 (machine 0) and process 2 (machine 1) write to this one" in save_on_each_node_refusal(
        shared, "runs/x")
