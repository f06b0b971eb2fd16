"""Review mends on the training side: the cached teacher's device, a checkpoint that fills the disk while its
weights are written (safetensors), and the one way a cache folder is saved whole."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict

from tests.conftest import save_random_baseline, synth_clip
from tests.test_interruption_audit import assert_one_error_line, hfspeech, write_clips

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

LABELS = ["high", "low", "noise"]
TINY = dict(conv_channels=[4, 8], n_mels=16, apply_spec_augment=False)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    return save_random_baseline(tmp_path_factory.mktemp("teacher") / "cnn", "cnn", LABELS, 0.5, **TINY)


def test_a_teacher_given_no_device_runs_on_the_cpu_even_with_a_gpu(teacher, monkeypatch):
    """Without a device the cached path moved the teacher to CUDA whenever one was there, --use_cpu or not."""
    from hfspeech.training.live_teacher import LiveTeacher

    live = LiveTeacher(str(teacher), LABELS, 16000)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU that this run was told not to use
    clips = [synth_clip(kind, np.random.default_rng(0), 16000) for kind in LABELS]
    logits = live.logits_of(clips)
    assert logits.device.type == "cpu" and next(live.model.parameters()).device.type == "cpu"
    assert logits.shape == (3, 3)


def test_distillation_computes_the_cached_logits_on_the_runs_device(tone_folder, teacher, tmp_path, monkeypatch):
    """The run's device (`--use_cpu` here) reaches the teacher of the cached path; it got none before."""
    from hfspeech.training.distill import parse_distill_args, run_distillation
    from hfspeech.training.live_teacher import LiveTeacher

    devices, logits_of = [], LiveTeacher.logits_of

    def recording(self, clips, device=None):
        devices.append(device)
        return logits_of(self, clips, device)

    monkeypatch.setattr(LiveTeacher, "logits_of", recording)
    flags = ["--teacher", str(teacher), "--student_model_type", "cnn", "--config_overrides", json.dumps(TINY),
             "--data_dir", str(tone_folder), "--output_dir", str(tmp_path / "out"), "--use_cpu", "True",
             "--teacher_cache_dir", str(tmp_path / "cache"), "--max_length_seconds", "0.5", "--max_steps", "1",
             "--save_strategy", "no", "--eval_strategy", "no", "--load_best_model_at_end", "False",
             "--disable_tqdm", "True", "--teacher_batch_size", "64"]
    run_distillation(*parse_distill_args(flags))
    assert devices and all(device == torch.device("cpu") for device in devices), devices


def test_a_checkpoint_that_fills_the_disk_while_its_weights_are_written_is_one_line(tmp_path, monkeypatch):
    """safetensors raises its own `SafetensorError` ("I/O error: File too large (os error 27)"), neither an
    OSError nor a RuntimeError: a traceback, where docs/errors.md promises one line naming the output folder."""
    import datasets

    from hfspeech.training.run import main as train

    write_clips(tmp_path / "data", 9, per_label=True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    flags = ["--data_dir", str(tmp_path / "data"), "--model_type", "cnn", "--max_length_seconds", "0.5",
             "--config_overrides", json.dumps({"conv_channels": [16, 32], "n_mels": 16}), "--num_train_epochs", "1"]
    train([*flags, "--output_dir", str(tmp_path / "first"), "--save_strategy", "no"])  # caches the decoded audio
    weights = (tmp_path / "first" / "model.safetensors").stat().st_size
    assert weights > 12_000  # over the limit below: the first file of the checkpoint cannot be written
    run = tmp_path / "run"
    result = hfspeech(["train", *flags, "--output_dir", str(run)], file_size_limit=8000,
                      env={"HF_DATASETS_CACHE": str(tmp_path / "cache")})
    assert_one_error_line(result, f"{run}: cannot write a checkpoint (File too large)", "resumes from the last")
    # It failed on the weights: the model's config.json is written before them, the optimizer's state after.
    assert {p.name for p in run.glob("checkpoint-*/*")} <= {"config.json", "model.safetensors"}


def test_a_full_disk_outside_a_checkpoint_is_not_called_a_checkpoint(tone_folder, tmp_path, monkeypatch):
    """The whole of `trainer.train` was wrapped: a log write (TensorBoard's events file) that filled the disk was
    "cannot write a checkpoint". It keeps its own OSError now (the CLI's line names its file)."""
    from hfspeech.errors import OutputWriteError
    from hfspeech.training.run import main as train
    from hfspeech.training.trainer import AudioClassificationTrainer

    def full_disk_log(self, logs, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "runs" / "events.out"))

    monkeypatch.setattr(AudioClassificationTrainer, "log", full_disk_log)
    with pytest.raises(OSError) as raised:
        train(["--data_dir", str(tone_folder), "--model_type", "cnn", "--config_overrides", json.dumps(TINY),
               "--output_dir", str(tmp_path / "out"), "--max_length_seconds", "0.5", "--max_steps", "1",
               "--logging_steps", "1", "--save_strategy", "no", "--eval_strategy", "no",
               "--load_best_model_at_end", "False", "--disable_tqdm", "True"])
    assert not isinstance(raised.value, OutputWriteError) and raised.value.filename.endswith("events.out")


def listing() -> DatasetDict:
    return DatasetDict({"train": Dataset.from_dict({"audio": ["a.wav"], "label": [0]})})


def test_a_listing_that_fails_for_another_reason_than_room_is_not_called_a_full_disk(tmp_path, monkeypatch):
    """Any OSError while saving the audio folder's listing was "cannot write (...); make room", a permission or
    a clash of names too; only a full or read-only disk is (`errors.writing_to`)."""
    from hfspeech.data import loading
    from hfspeech.errors import OutputWriteError

    def refused(self, path, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(DatasetDict, "save_to_disk", refused)
    with pytest.raises(PermissionError) as raised:
        loading._save_whole(listing(), tmp_path / "key")
    assert not isinstance(raised.value, OutputWriteError)

    def full(self, path, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(DatasetDict, "save_to_disk", full)
    with pytest.raises(OutputWriteError, match=f"{tmp_path}: cannot write .No space left on device.; make room"):
        loading._save_whole(listing(), tmp_path / "key")


def test_save_whole_replaces_a_damaged_folder_and_leaves_no_partial_one(tmp_path):
    from datasets import load_from_disk

    from hfspeech.data.whole_folders import save_whole

    folder = tmp_path / "key"
    folder.mkdir()
    (folder / "dataset_dict.json").write_text("")  # what a disk that filled while it was written left
    save_whole(listing(), folder)
    assert load_from_disk(str(folder))["train"]["audio"] == ["a.wav"]
    assert [p.name for p in tmp_path.iterdir()] == ["key"]
