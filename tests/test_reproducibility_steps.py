"""A run resumed from a `--save_strategy steps` checkpoint in the middle of an epoch ends as the uninterrupted
run does, with random crops, waveform augmentation, --oversample and mixup all drawing
(docs/training.md#reproducibility).

The epoch's crops, noise and mixing weights came from generators started at the epoch and consumed batch by
batch; a run resumed mid-epoch skips the batches before the checkpoint without drawing them, so the rest of the
epoch drew other ones (weights ended up to 0.025 apart). Now each clip draws from (seed, epoch, row, how many
times the epoch drew that row before) and each mixup from (seed, step); --group_by_length's order from (seed,
epoch). As a clip's draws no longer depend on the DataLoader worker that reads it, --dataloader_num_workers 0 and 2
train the same weights too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from conftest import write_long_tone_clips
from safetensors.numpy import load_file

from hfspeech.cli import main
from hfspeech.data.augment import AugmentationConfig, WaveformAugmenter
from hfspeech.data.transforms import TrainTransform, TransformedSplit
from hfspeech.training.epoch_seeds import EpochWeightedSampler

TINY_CNN = json.dumps({"conv_channels": [4, 8], "n_mels": 16})  # SpecAugment on: torch's RNG in play too


def transform() -> TrainTransform:
    augmenter = WaveformAugmenter(AugmentationConfig(noise_snr_db=(10, 30), gain_db=6), 16000, seed=3)
    return TrainTransform(max_samples=800, augmenter=augmenter, seed=3)


def view(epoch: int) -> TransformedSplit:
    clips = [np.linspace(-0.5, 0.5, 1600, dtype=np.float32) * (i + 1) for i in range(4)]
    split = TransformedSplit(Dataset.from_dict({"input_values": clips, "label": [0, 1, 2, 0]}), transform())
    split.set_epoch(epoch)
    return split


def clips_of(split: TransformedSplit, rows) -> list[np.ndarray]:
    return [row["input_values"] for row in split.__getitems__(rows)]


def test_a_clips_crop_and_augmentation_do_not_depend_on_the_clips_drawn_before_it():
    whole_epoch = clips_of(view(1), [0, 1, 2, 3])
    resumed = view(1)  # a run resumed after the batch of rows 0 and 1: it never read them
    np.testing.assert_array_equal(clips_of(resumed, [3])[0], whole_epoch[3])
    np.testing.assert_array_equal(clips_of(resumed, [2])[0], whole_epoch[2])
    assert not np.array_equal(clips_of(view(2), [3])[0], whole_epoch[3])  # another epoch: other draws


def test_a_clip_oversampled_twice_in_an_epoch_is_augmented_twice_not_copied():
    weights = torch.tensor([1.0, 1.0, 1.0, 50.0])
    sampler = EpochWeightedSampler(weights, seed=0)
    sampler.set_epoch(0)
    draws = list(sampler)
    repeats = [draw for draw in draws if draw == 3]
    assert [draw.occurrence for draw in repeats] == list(range(len(repeats))) and len(repeats) > 1
    first, second = clips_of(view(0), repeats[:2])
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(clips_of(view(0), [repeats[1]])[0], second)  # still from its draw alone


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory) -> Path:
    """Clips twice the crop: every epoch crops each one somewhere else."""
    return write_long_tone_clips(tmp_path_factory.mktemp("reproducibility_steps") / "data")


def train(data: Path, output_dir: Path, *extra: str, batches: str = "--oversample") -> dict:
    assert main(["train", "--data_dir", str(data), "--output_dir", str(output_dir), "--model_type", "cnn",
                 "--config_overrides", TINY_CNN, "--num_train_epochs", "2", "--learning_rate", "1e-2",
                 "--per_device_train_batch_size", "4", "--max_length_seconds", "0.3", "--seed", "0",
                 "--noise_snr_db", "10,30", "--gain_db", "6", batches, "--mixup_alpha", "0.4",
                 "--load_best_model_at_end", "False", "--save_strategy", "steps", "--save_steps", "3",
                 "--save_total_limit", "10", "--report_to", "none", *extra]) == 0
    return load_file(str(output_dir / "model.safetensors"))


def mid_epoch_checkpoints(run: Path) -> list[Path]:
    steps_per_epoch = json.loads((run / "trainer_state.json").read_text())["global_step"] // 2  # 2 epochs
    steps = sorted(int(p.name.split("-")[1]) for p in run.glob("checkpoint-*"))
    return [run / f"checkpoint-{step}" for step in steps if step % steps_per_epoch]


def resume_from(data: Path, checkpoint: Path, killed: Path, *extra: str, batches: str = "--oversample") -> dict:
    """What a run killed after `checkpoint` leaves behind, trained again with the same command."""
    killed.mkdir()
    shutil.copytree(checkpoint, killed / checkpoint.name)
    shutil.copy(checkpoint.parent / "run_inputs.json", killed)
    return train(data, killed, *extra, batches=batches)


def assert_same_weights(resumed: dict, uninterrupted: dict) -> None:
    assert resumed.keys() == uninterrupted.keys()
    for name in uninterrupted:
        np.testing.assert_array_equal(resumed[name], uninterrupted[name], err_msg=name)


@pytest.fixture(scope="module")
def uninterrupted(long_clips, tmp_path_factory) -> tuple[Path, dict]:
    """(run folder, final weights) of the oversampled run without DataLoader workers, never interrupted: what a
    resumed run and a run with workers must both end with, trained once for the two tests."""
    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    return run, train(long_clips, run, "--dataloader_num_workers", "0")


def test_a_run_resumed_mid_epoch_ends_with_the_uninterrupted_runs_weights(long_clips, uninterrupted, tmp_path):
    run, uninterrupted = uninterrupted
    checkpoints = mid_epoch_checkpoints(run)
    assert checkpoints, "no checkpoint in the middle of an epoch: the test would prove nothing"
    for checkpoint in checkpoints:
        resumed = resume_from(long_clips, checkpoint, tmp_path / f"killed-{checkpoint.name}",
                              "--dataloader_num_workers", "0")
        assert_same_weights(resumed, uninterrupted)


def test_dataloader_workers_do_not_change_the_draws(long_clips, uninterrupted, tmp_path):
    without = uninterrupted[1]  # --dataloader_num_workers 0
    run = tmp_path / "two-workers"
    assert_same_weights(train(long_clips, run, "--dataloader_num_workers", "2"), without)
    checkpoint = mid_epoch_checkpoints(run)[-1]
    assert_same_weights(resume_from(long_clips, checkpoint, tmp_path / "killed", "--dataloader_num_workers", "2"),
                        without)


def test_batches_grouped_by_length_resume_mid_epoch_as_drawn(long_clips, tmp_path):
    """transformers' LengthGroupedSampler drew its order from the global random state, which a run resumed
    mid-epoch restores only after its first batch: the resumed epoch ran in another order (0.07 per weight)."""
    run = tmp_path / "uninterrupted"
    uninterrupted = train(long_clips, run, batches="--group_by_length")
    checkpoint = mid_epoch_checkpoints(run)[-1]
    assert_same_weights(resume_from(long_clips, checkpoint, tmp_path / "killed", batches="--group_by_length"),
                        uninterrupted)
