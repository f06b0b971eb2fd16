"""`--dataloader_persistent_workers` in map-style training: every epoch gets its own crops and augmentation.

The Trainer tells the epoch to the training data in the main process (`training.epoch_seeds.EpochSeeds`);
persistent DataLoader workers copy the data once, at the first epoch, so they cropped and augmented every epoch
as the first (a 3-epoch tiny CNN without dropout or SpecAugment, 2 workers, ended 0.017 per weight away from the
same run without persistent workers). `TrainTransform` now keeps the epoch in shared memory, as `datasets` keeps
a stream's (docs/training.md#reproducibility).
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_long_tone_clips
from datasets import Dataset
from datasets.fingerprint import Hasher
from safetensors.numpy import load_file

from hfspeech.cli import main
from hfspeech.data.augment import AugmentationConfig, WaveformAugmenter
from hfspeech.data.transforms import TrainTransform, TransformedSplit

# No dropout, no SpecAugment: the main process's torch generator then plays no part, and persistent and
# non-persistent workers (torch draws their base seed once vs once an epoch) can train the very same weights.
NO_TORCH_RANDOMNESS_CNN = json.dumps({"conv_channels": [4, 8], "n_mels": 16, "apply_spec_augment": False,
                                      "classifier_dropout": 0.0})


def train_transform() -> TrainTransform:
    config = AugmentationConfig(noise_snr_db=(10, 30), gain_db=6, time_shift_seconds=0.01)
    return TrainTransform(max_samples=800, augmenter=WaveformAugmenter(config, 16000, seed=3), seed=3)


def stack_clips(examples: list[dict]) -> np.ndarray:  # module level: spawned workers unpickle it
    return np.stack([example["input_values"] for example in examples])


def epochs_drawn(num_workers: int, persistent: bool, context=None, epochs: int = 3) -> list[np.ndarray]:
    """Each epoch's clips as a DataLoader reads them, the epoch told in this process as `EpochSeeds` does."""
    clips = [np.linspace(-0.5, 0.5, 1600, dtype=np.float32) * (i + 1) for i in range(8)]
    split = TransformedSplit(Dataset.from_dict({"input_values": clips, "label": [0] * 8}), train_transform())
    loader = torch.utils.data.DataLoader(split, batch_size=4, num_workers=num_workers, collate_fn=stack_clips,
                                         persistent_workers=persistent, multiprocessing_context=context)
    drawn = []
    for epoch in range(epochs):
        split.set_epoch(epoch)
        drawn.append(np.concatenate(list(loader)))
    return drawn


def assert_same_epochs(drawn: list[np.ndarray], expected: list[np.ndarray]) -> None:
    for epoch, (got, want) in enumerate(zip(drawn, expected)):
        np.testing.assert_array_equal(got, want, err_msg=f"epoch {epoch}")


def test_persistent_workers_crop_and_augment_each_epoch_as_the_main_process_does():
    in_process = epochs_drawn(num_workers=0, persistent=False)
    assert not np.array_equal(in_process[0], in_process[1])  # the epochs do differ
    assert_same_epochs(epochs_drawn(num_workers=2, persistent=True), in_process)
    assert_same_epochs(epochs_drawn(num_workers=2, persistent=False), in_process)


def test_persistent_spawned_workers_see_each_epoch():
    """macOS and Windows start workers with spawn: the transform reaches them through torch's pickler."""
    assert_same_epochs(epochs_drawn(num_workers=1, persistent=True, context="spawn", epochs=2),
                       epochs_drawn(num_workers=0, persistent=False, epochs=2))


def test_a_pickled_transform_keeps_its_epoch_and_its_datasets_fingerprint():
    told = train_transform()
    told.set_epoch(2)
    copy = pickle.loads(pickle.dumps(told))
    assert copy.epoch == 2
    copy.set_epoch(3)  # a copy made by pickle is its own: it does not move the original
    assert told.epoch == 2
    assert Hasher.hash(train_transform()) == Hasher.hash(train_transform())  # with_transform's fingerprint
    assert Hasher.hash(told) != Hasher.hash(train_transform())


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory) -> Path:
    return write_long_tone_clips(tmp_path_factory.mktemp("persistent_workers") / "data")


def train(data: Path, output_dir: Path, persistent: bool) -> dict:
    assert main(["train", "--data_dir", str(data), "--output_dir", str(output_dir), "--model_type", "cnn",
                 "--config_overrides", NO_TORCH_RANDOMNESS_CNN, "--num_train_epochs", "2", "--learning_rate", "1e-2",
                 "--per_device_train_batch_size", "4", "--max_length_seconds", "0.3", "--seed", "0",
                 "--noise_snr_db", "10,30", "--gain_db", "6", "--time_shift_seconds", "0.05",
                 "--load_best_model_at_end", "False", "--save_total_limit", "5", "--dataloader_num_workers", "2",
                 "--dataloader_persistent_workers", str(persistent), "--report_to", "none"]) == 0
    return load_file(str(output_dir / "model.safetensors"))


def assert_same_weights(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_persistent_workers_train_and_resume_as_non_persistent_ones(long_clips, tmp_path):
    persistent = train(long_clips, tmp_path / "persistent", persistent=True)
    assert_same_weights(persistent, train(long_clips, tmp_path / "not_persistent", persistent=False))
    first = min((tmp_path / "persistent").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    killed = tmp_path / "killed"  # a persistent run killed in its second epoch, rerun with the same command
    killed.mkdir()
    shutil.copytree(first, killed / first.name)
    shutil.copy(tmp_path / "persistent" / "run_inputs.json", killed)
    assert_same_weights(train(long_clips, killed, persistent=True), persistent)
