"""`--streaming`: each streamed clip's crop and augmentation come from (seed, epoch, the clip's position), so a run
resumed in a later pass ends bit-identical and persistent DataLoader workers draw each pass's crops
(hfspeech.data.stream_draws).

The streamed clips drew one after another from a generator per DataLoader worker that never learnt the epoch: a
run resumed in its second pass started that generator again (a tiny CNN ended 0.007 per weight away from the
uninterrupted run), and a clip's crop depended on the clips read before it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from datasets import Dataset
from safetensors.numpy import load_file

from hfspeech.cli import main
from hfspeech.data.augment import AugmentationConfig, WaveformAugmenter
from hfspeech.data.stream_draws import EPOCH_KEY
from hfspeech.data.streaming import StreamingCollator
from hfspeech.data.transforms import TrainTransform
from hfspeech.training.streaming import TrainingStream
from tests.conftest import TINY_CNN, write_long_tone_clips


def collator() -> StreamingCollator:
    augmenter = WaveformAugmenter(AugmentationConfig(noise_snr_db=(10, 30), gain_db=6), 16000, seed=3)
    return StreamingCollator(lambda examples: examples, TrainTransform(800, augmenter, seed=3), 16000)


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("streamed_draws")
    examples = []
    for i in range(3):
        path = folder / f"{i}.wav"
        sf.write(path, np.linspace(-0.5, 0.5, 1600, dtype=np.float32) * (i + 1), 16000)
        examples.append({"audio": {"path": str(path), "bytes": None}, "label": 0, "row": i})
    return examples


def clips(batch, epoch: int) -> list[np.ndarray]:
    return [example["input_values"] for example in collator()([{**e, EPOCH_KEY: epoch} for e in batch])]


def test_a_streamed_clips_draws_come_from_its_position_and_epoch_not_the_clips_before_it(clip_files):
    whole = clips(clip_files, epoch=1)
    np.testing.assert_array_equal(clips(clip_files[2:], epoch=1)[0], whole[2])  # first batches skipped (resume)
    hub_like = [{key: value for key, value in e.items() if key != "row"} for e in clip_files]  # no index row
    np.testing.assert_array_equal(clips(hub_like[1:], epoch=1)[1], clips(hub_like, epoch=1)[2])
    assert not np.array_equal(clips(clip_files[2:], epoch=2)[0], whole[2])  # another pass: other draws


def test_persistent_dataloader_workers_read_each_pass_with_its_epoch():
    stream = Dataset.from_dict({"label": list(range(4))}).to_iterable_dataset(num_shards=2)
    loader = torch.utils.data.DataLoader(TrainingStream(stream), batch_size=2, num_workers=2,
                                         persistent_workers=True, collate_fn=lambda batch: batch)
    for epoch in (0, 1, 2):
        loader.dataset.set_epoch(epoch)
        assert {example[EPOCH_KEY] for batch in loader for example in batch} == {epoch}


def train(data: Path, output_dir: Path) -> dict:
    assert main(["train", "--data_dir", str(data), "--output_dir", str(output_dir), "--model_type", "cnn",
                 "--streaming", "--shuffle_buffer_size", "4", "--validation_split_percentage", "0",
                 "--test_split_percentage", "0", "--config_overrides", TINY_CNN, "--num_train_epochs", "2",
                 "--learning_rate", "1e-2", "--per_device_train_batch_size", "4", "--max_length_seconds", "0.3",
                 "--seed", "0", "--noise_snr_db", "10,30", "--gain_db", "6", "--load_best_model_at_end", "False",
                 "--save_strategy", "steps", "--save_steps", "2", "--save_total_limit", "10",
                 "--report_to", "none"]) == 0
    return load_file(str(output_dir / "model.safetensors"))


def test_a_streamed_run_resumed_in_its_second_pass_ends_with_the_uninterrupted_runs_weights(tmp_path):
    data = write_long_tone_clips(tmp_path / "data")  # clips twice the crop: every pass crops them elsewhere
    run = tmp_path / "uninterrupted"
    uninterrupted = train(data, run)
    steps_per_pass = json.loads((run / "trainer_state.json").read_text())["global_step"] // 2
    checkpoint = run / f"checkpoint-{steps_per_pass + 1}"  # one batch into the second pass
    assert checkpoint.is_dir(), "no checkpoint in the second pass: the test would prove nothing"
    killed = tmp_path / "killed"
    killed.mkdir()
    shutil.copytree(checkpoint, killed / checkpoint.name)
    shutil.copy(run / "run_inputs.json", killed)
    resumed = train(data, killed)
    for name in uninterrupted:
        np.testing.assert_array_equal(resumed[name], uninterrupted[name], err_msg=name)
