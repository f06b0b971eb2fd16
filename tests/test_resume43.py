"""A resumed run's learning-rate schedule (`training.lr_schedule`) and `--data_seed` for hfspeech's own samplers.

Before: resumed from checkpoint-6 of an 8-step linear run with 3 epochs (12 steps), step 8's rate went up from the
0.00143 the run was at to the longer schedule's 0.005, without a word, and training_hyperparameters.json said
"linear" as if one schedule had run; `--lr_scheduler_type cosine` or another warmup switched the curve mid-run, also
without a word. `--oversample` and `--group_by_length` drew their batches from --seed, whatever --data_seed said.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from conftest import TINY_CNN, write_tone_folder
from hfspeech.cli import main


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    return write_tone_folder(tmp_path_factory.mktemp("tones") / "data", clips_per_class=6, rates=(16000,))


def train(tones: Path, output_dir: Path, *flags: str) -> int:
    """A tiny CNN run, 4 steps an epoch (14 training clips, batches of 4), a checkpoint every 2 steps."""
    return main(["train", "--data_dir", str(tones), "--output_dir", str(output_dir), "--model_type", "cnn",
                 "--config_overrides", TINY_CNN, "--learning_rate", "1e-2", "--max_length_seconds", "0.5", "--seed",
                 "0", "--dataloader_num_workers", "0", "--per_device_train_batch_size", "4", "--eval_strategy", "no",
                 "--save_strategy", "steps", "--save_steps", "2", "--logging_strategy", "steps", "--logging_steps", "1",
                 *flags])


@pytest.fixture(scope="module")
def two_epochs(tones, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "two_epochs"
    assert train(tones, run, "--num_train_epochs", "2") == 0
    return run


def resumable_copy(run: Path, folder: Path) -> Path:
    """The run cut back to its checkpoint-6 (mid-way through epoch 2), as if stopped there."""
    shutil.copytree(run, folder)
    for checkpoint in folder.glob("checkpoint-*"):
        if checkpoint.name != "checkpoint-6":
            shutil.rmtree(checkpoint)
    return folder


def learning_rates(run: Path) -> dict:
    history = json.loads((run / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry["learning_rate"] for entry in history if "learning_rate" in entry}


def test_more_epochs_on_resume_are_warned_with_the_rate_they_change_and_recorded(tones, two_epochs, tmp_path, caplog):
    run = resumable_copy(two_epochs, tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="hfspeech.train"):
        assert train(tones, run, "--num_train_epochs", "3") == 0
    rates = learning_rates(run)
    assert rates[7] == pytest.approx(learning_rates(two_epochs)[7])  # the checkpoint's, restored with its optimizer
    assert rates[8] == pytest.approx(0.005) and learning_rates(two_epochs)[8] == pytest.approx(0.01 / 7)
    assert ("checkpoint-6: resumed with 12 training steps instead of 8 (--num_train_epochs 2 -> 3): from step 8 "
            "the learning rate follows this run's 12-step linear schedule, not the 8-step one its first 6 steps "
            "followed (0.00143 -> 0.005 at step 8)") in caplog.text
    recorded = json.loads((run / "training_hyperparameters.json").read_text())
    assert recorded["lr_scheduler_type"] == "linear, 8 steps; resumed at step 6 as 12"  # was "linear"
    assert json.loads((run / "checkpoint-12" / "lr_schedule.json").read_text())["lengths"] == [[0, 8], [6, 12]]


@pytest.mark.parametrize("flags, said", [
    (("--lr_scheduler_type", "cosine"), "--lr_scheduler_type 'linear' -> 'cosine'"),
    (("--warmup_steps", "3"), "--warmup_steps 0 -> 3"),
])
def test_another_schedule_shape_on_resume_is_refused_in_one_line(tones, two_epochs, tmp_path, capsys, flags, said):
    run = resumable_copy(two_epochs, tmp_path / "run")
    assert train(tones, run, "--num_train_epochs", "2", *flags) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "checkpoint-6: cannot resume with another learning-rate schedule" in errors[0]
    assert said in errors[0] and "pass --overwrite_output_dir to start over" in errors[0]
    assert not (run / "checkpoint-8").exists()  # refused before a step


def test_a_checkpoint_of_an_earlier_version_is_said_unchecked_and_its_length_still_compared(tones, two_epochs, tmp_path,
                                                                                          caplog):
    run = resumable_copy(two_epochs, tmp_path / "run")
    (run / "checkpoint-6" / "lr_schedule.json").unlink(missing_ok=True)  # what hfspeech wrote before session 43
    with caplog.at_level(logging.WARNING, logger="hfspeech.train"):
        assert train(tones, run, "--num_train_epochs", "3") == 0
    assert "checkpoint-6: its run recorded no lr_schedule.json" in caplog.text
    assert "resumed with 12 training steps instead of 8" in caplog.text


@pytest.mark.parametrize("sampler", ["--oversample", "--group_by_length"])
def test_data_seed_seeds_hfspeechs_own_samplers(tones, tmp_path, sampler):
    def weights(data_seed: str, name: str) -> dict:
        assert train(tones, tmp_path / name, sampler, "--max_steps", "2", "--data_seed", data_seed) == 0
        return load_file(tmp_path / name / "model.safetensors")

    first, other, again = weights("1", "first"), weights("2", "other"), weights("1", "again")
    assert any(not first[name].equal(other[name]) for name in first)  # were bit-identical: both drawn from --seed 0
    assert all(first[name].equal(again[name]) for name in first)
