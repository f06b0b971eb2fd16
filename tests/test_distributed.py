"""Two processes joined in one gloo DDP group on CPU, launched as a user would with accelerate.

`accelerate launch --cpu --num_processes 2` starts a single process in accelerate 1.x (CPU
multi-process goes through MPI there); `--multi_gpu --num_processes 2` on a machine without a GPU
starts two, and the recipe joins them on CPU (`use_cpu`, see `training.command_line.recipe_parser`). Each process
writes a marker (`HFSPEECH_RANK_MARKERS`, `training.distributed`): the test reads those, not the log.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import TINY_CNN

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two_processes(tmp_path: Path, recipe_args: list[str]) -> tuple[Path, str]:
    out = tmp_path / "run"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), str(REPO / "recipes" / "finetune.py"),
               "--output_dir", str(out), "--config_overrides", TINY_CNN, "--learning_rate", "1e-2",
               "--per_device_train_batch_size", "4", "--max_length_seconds", "0.5", "--seed", "0",
               "--save_total_limit", "1", *recipe_args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "",
           "HFSPEECH_RANK_MARKERS": str(tmp_path / "markers"), "HF_DATASETS_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result.stderr + result.stdout


def check_ranks_trained_together(tmp_path: Path, out: Path, epochs: int) -> dict:
    markers = [json.loads(p.read_text()) for p in sorted((tmp_path / "markers").glob("rank*.json"))]
    assert [m["rank"] for m in markers] == [0, 1]
    assert all(m["world_size"] == 2 and m["distributed"] for m in markers)
    assert markers[0]["parameter_checksum"] == markers[1]["parameter_checksum"]  # DDP kept them in sync
    metrics = json.loads((out / "metrics.json").read_text())
    # Each optimizer step took one batch on each process: the data was split in two, not repeated.
    steps = epochs * math.ceil(metrics["num_train_clips"] / (4 * 2))
    assert markers[0]["global_step"] == markers[1]["global_step"] == steps
    assert len(list(out.rglob("metrics.json"))) == 1
    assert (out / "model.safetensors").is_file() and not list(out.glob(".final-save-partial-*"))  # moved in once
    matrix = json.loads((out / "test_confusion_matrix.json").read_text())["matrix"]
    assert sum(map(sum, matrix)) == metrics["num_test_clips"]  # every test clip once: padding dropped by the gather
    assert 0 <= metrics["test_accuracy"] <= 1
    return metrics


def test_two_processes_train_one_model_and_write_outputs_once(tone_folder, tmp_path):
    out, log = launch_two_processes(tmp_path, ["--data_dir", str(tone_folder), "--num_train_epochs", "3",
                                               "--test_split_percentage", "20", "--disable_tqdm", "False"])
    metrics = check_ranks_trained_together(tmp_path, out, epochs=3)
    assert metrics["num_test_clips"] == 12
    # The main process decodes; the other one finds the datasets cache (the bar is drawn once).
    assert log.count("decoding train audio (with the splits cut from it) at 16000 Hz:   0%") == 1, log[-3000:]


# Two processes training from a stream (`--streaming --shuffle_buffer_size 16`, 2 passes) are checked as above by
# tests/test_distributed_streaming_audit.py::test_two_processes_train_from_a_stream_and_resume_it_where_it_stopped,
# on the uninterrupted run it resumes from: one launch for both.
