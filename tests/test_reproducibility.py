"""Same command and --seed, same model: a run resumed at an epoch ends as the uninterrupted run does, with
random crops, waveform augmentation, --oversample and mixup all drawing (docs/training.md#reproducibility).

Their generators lived in objects that Trainer's checkpoints do not hold, and went on from epoch to epoch; a run
resumed at epoch k drew epoch 0's crops, noise, batches and mixing weights again. Now each epoch draws from
(--seed, epoch) (`hfspeech.training.epoch_seeds`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_long_tone_clips
from safetensors.numpy import load_file

from hfspeech.cli import main
from hfspeech.data.augment import AugmentationConfig, WaveformAugmenter
from hfspeech.data.transforms import TrainTransform
from hfspeech.training.epoch_seeds import EpochWeightedSampler

TINY_CNN = json.dumps({"conv_channels": [4, 8], "n_mels": 16})  # SpecAugment on: torch's RNG in play too


def epoch_draws(transform: TrainTransform, epoch: int) -> list[np.ndarray]:
    transform.set_epoch(epoch)
    clips = [np.linspace(-0.5, 0.5, 1600, dtype=np.float32) * (i + 1) for i in range(3)]
    return transform({"input_values": clips, "label": [0, 1, 2]})["input_values"]


def test_an_epochs_crops_and_augmentation_do_not_depend_on_the_epochs_before_it():
    def transform():
        augmenter = WaveformAugmenter(AugmentationConfig(noise_snr_db=(10, 30), gain_db=6), 16000, seed=3)
        return TrainTransform(max_samples=800, augmenter=augmenter, seed=3)

    ran_through = transform()
    for epoch in range(2):
        epoch_draws(ran_through, epoch)
    resumed = transform()  # a resumed run: its first epoch is the third
    for a, b in zip(epoch_draws(ran_through, 2), epoch_draws(resumed, 2)):
        np.testing.assert_array_equal(a, b)
    earlier = epoch_draws(transform(), 1)
    assert not all(np.array_equal(a, b) for a, b in zip(earlier, epoch_draws(resumed, 2)))  # epochs still differ


def test_oversampling_draws_each_epoch_from_the_seed_and_the_epoch():
    weights = torch.tensor([1.0, 1.0, 1.0, 5.0, 5.0, 0.5, 0.5, 0.5])
    ran_through, resumed = EpochWeightedSampler(weights, seed=0), EpochWeightedSampler(weights, seed=0)
    orders = []
    for epoch in range(3):
        ran_through.set_epoch(epoch)
        orders.append(list(ran_through))
    resumed.set_epoch(2)
    assert list(resumed) == orders[2]
    assert orders[0] != orders[1] != orders[2]
    assert list(ran_through) != orders[2]  # iterated again without set_epoch: the next epoch, not a repeat


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory) -> Path:
    """Clips twice the crop: every epoch crops each one somewhere else."""
    return write_long_tone_clips(tmp_path_factory.mktemp("reproducibility") / "data")


def train(data: Path, output_dir: Path) -> dict:
    assert main(["train", "--data_dir", str(data), "--output_dir", str(output_dir), "--model_type", "cnn",
                 "--config_overrides", TINY_CNN, "--num_train_epochs", "2", "--learning_rate", "1e-2",
                 "--per_device_train_batch_size", "4", "--max_length_seconds", "0.3", "--seed", "0",
                 "--noise_snr_db", "10,30", "--gain_db", "6", "--oversample", "--mixup_alpha", "0.4",
                 "--load_best_model_at_end", "False", "--save_total_limit", "5", "--dataloader_num_workers", "0",
                 "--report_to", "none"]) == 0
    return load_file(str(output_dir / "model.safetensors"))


def test_a_run_resumed_at_an_epoch_ends_with_the_uninterrupted_runs_weights(long_clips, tmp_path):
    uninterrupted = train(long_clips, tmp_path / "uninterrupted")
    first = min((tmp_path / "uninterrupted").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    killed = tmp_path / "killed"  # what a run killed during its second epoch leaves: the first epoch's checkpoint
    killed.mkdir()
    shutil.copytree(first, killed / first.name)
    shutil.copy(tmp_path / "uninterrupted" / "run_inputs.json", killed)
    resumed = train(long_clips, killed)
    assert resumed.keys() == uninterrupted.keys()
    for name in uninterrupted:
        np.testing.assert_array_equal(resumed[name], uninterrupted[name], err_msg=name)
