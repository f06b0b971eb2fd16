"""The same command run again into a finished run whose last step fell inside an epoch: Trainer skipped the trained
batches of that epoch, then trained the next one before it checked --max_steps (checkpoint-7 of a 6-step run, its
weights changed; train_session's "nothing left to train" came only where the end fell on an epoch's end)."""

from __future__ import annotations

import hashlib
import logging

from conftest import write_tone_folder
from test_overwrite42 import train


def test_a_finished_run_ending_inside_an_epoch_takes_no_step_when_run_again(tmp_path, caplog):
    tones = write_tone_folder(tmp_path / "data", clips_per_class=6, rates=(16000,))  # 14 to train: 4 steps an epoch
    run = tmp_path / "run"
    flags = ("--max_steps", "6", "--per_device_train_batch_size", "4", "--load_best_model_at_end", "False")
    assert train(["--data_dir", str(tones)], run, *flags) == 0
    checkpoints = sorted(path.name for path in run.glob("checkpoint-*"))
    assert checkpoints[-1] == "checkpoint-6"
    weights = hashlib.sha256((run / "model.safetensors").read_bytes()).hexdigest()
    caplog.set_level(logging.INFO, logger="hfspeech.train")
    assert train(["--data_dir", str(tones)], run, *flags) == 0
    assert sorted(path.name for path in run.glob("checkpoint-*")) == checkpoints  # no checkpoint-7
    assert hashlib.sha256((run / "model.safetensors").read_bytes()).hexdigest() == weights
    assert any("nothing left to train" in record.getMessage() for record in caplog.records)


def test_run_again_it_neither_evaluates_again_nor_rewrites_its_last_checkpoint(tmp_path):
    """Review R4: with epoch-end evaluation and saving, the rerun stopped at the end evaluated again and rewrote
    checkpoint-6 (its trainer_state.json, rng state and training_args.bin) in place."""
    tones = write_tone_folder(tmp_path / "data", clips_per_class=6, rates=(16000,))
    run = tmp_path / "run"
    flags = ("--max_steps", "6", "--per_device_train_batch_size", "4", "--eval_strategy", "epoch",
             "--save_strategy", "epoch")
    assert train(["--data_dir", str(tones)], run, *flags) == 0
    last = max(run.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    files = {path.name: path.read_bytes() for path in last.iterdir() if path.is_file()}
    assert train(["--data_dir", str(tones)], run, *flags) == 0
    assert {path.name: path.read_bytes() for path in last.iterdir() if path.is_file()} == files
