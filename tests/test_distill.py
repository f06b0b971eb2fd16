"""Distillation and mixup: the soft-target losses, the cached teacher logits, and a student that moves towards
a fixed teacher on clips neither was trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import save_random_baseline, synth_clip
from hfspeech.cli import main as cli
from hfspeech.errors import UsageError
from hfspeech.training import teacher_cache
from hfspeech.training.distill import parse_distill_args, run_distillation
from hfspeech.training.soft_targets import MixedBatch, kl_to_teacher, mixup, soft_loss

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

LABELS = ["high", "low", "noise"]  # the audio folder's label order (sorted folder names)
STUDENT = '{"width_multiplier": 0.5, "blocks_per_stage": [1, 1, 1, 1], "n_mels": 20, "apply_spec_augment": false}'


def test_mixup_mixes_waveforms_and_joins_the_masks():
    inputs = {"input_values": torch.arange(12, dtype=torch.float32).reshape(3, 4),
              "attention_mask": torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])}
    mix = mixup(inputs, 0.4, np.random.default_rng(0))
    assert 0.5 <= mix.lam < 1.0
    expected = mix.lam * inputs["input_values"] + (1 - mix.lam) * inputs["input_values"][mix.permutation]
    torch.testing.assert_close(mix.inputs["input_values"], expected)
    assert torch.equal(mix.inputs["attention_mask"],
                       torch.maximum(inputs["attention_mask"], inputs["attention_mask"][mix.permutation]))


@pytest.mark.parametrize("multi_label", [False, True])
def test_the_soft_loss_is_smallest_when_the_student_equals_the_teacher(multi_label):
    teacher = torch.randn(8, 5) * 3
    unmixed = MixedBatch({}, torch.arange(8), 1.0)
    at_teacher = soft_loss(teacher.clone(), teacher, unmixed, 2.0, multi_label)
    for seed in range(5):
        moved = teacher + torch.randn(8, 5, generator=torch.Generator().manual_seed(seed))
        assert soft_loss(moved, teacher, unmixed, 2.0, multi_label) > at_teacher
    if not multi_label:
        assert abs(float(at_teacher)) < 1e-5  # KL of a distribution to itself


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A fixed random CNN with O(1) logits: a teacher whose answers are not the labels, so only distillation
    can bring a student close to it."""
    return save_random_baseline(tmp_path_factory.mktemp("teacher") / "cnn", "cnn", LABELS, 0.5,
                                conv_channels=[4, 8], n_mels=16, apply_spec_augment=False)


def distill(tone_folder: Path, teacher: Path, output_dir: Path, weight: float, cache: Path, extra=()) -> Path:
    flags = ["--teacher", str(teacher), "--student_model_type", "bcresnet", "--config_overrides", STUDENT,
             "--data_dir", str(tone_folder), "--output_dir", str(output_dir), "--distill_weight", str(weight),
             "--distill_temperature", "1", "--teacher_cache_dir", str(cache), "--max_length_seconds", "0.5",
             "--num_train_epochs", "8", "--learning_rate", "5e-3", "--per_device_train_batch_size", "8",
             "--save_strategy", "no", "--eval_strategy", "no", "--load_best_model_at_end", "False",
             "--test_split_percentage", "25", "--seed", "0", "--disable_tqdm", "True", *extra]
    run_distillation(*parse_distill_args(flags))
    return output_dir


def logits_on(model_dir: Path, clips) -> np.ndarray:
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    model = AutoModelForAudioClassification.from_pretrained(model_dir).eval()
    extractor = AutoFeatureExtractor.from_pretrained(model_dir)
    with torch.no_grad():
        return model(**extractor(clips, sampling_rate=16000, padding="longest", return_tensors="pt")).logits.numpy()


def test_distillation_brings_the_student_closer_to_the_teacher_on_held_out_clips(tone_folder, teacher, tmp_path,
                                                                                 monkeypatch):
    cache = tmp_path / "cache"
    distilled = distill(tone_folder, teacher, tmp_path / "distilled", 1.0, cache)
    assert len(list(cache.iterdir())) == 1  # the teacher's logits, kept as an Arrow dataset

    def no_teacher_runs(*args, **kwargs):
        raise AssertionError("the teacher ran again instead of the cache being read")

    monkeypatch.setattr(teacher_cache, "compute_teacher_logits", no_teacher_runs)
    labels_only = distill(tone_folder, teacher, tmp_path / "labels-only", 0.0, cache)

    rng = np.random.default_rng(99)  # clips generated with a seed no split was made from
    clips = [synth_clip(kind, rng, 16000, rng.uniform(0.3, 0.5)) for kind in ["low", "high", "noise"] * 10]
    target = logits_on(teacher, clips)
    assert kl_to_teacher(logits_on(distilled, clips), target) < 0.5 * kl_to_teacher(logits_on(labels_only, clips),
                                                                                     target)


def test_mixup_and_distillation_train_together(tone_folder, teacher, tmp_path):
    """Mixed inputs with mixed teacher targets: the run goes through the soft-target loss and finishes."""
    import json

    flags = ["--teacher", str(teacher), "--student_model_type", "bcresnet", "--config_overrides", STUDENT,
             "--data_dir", str(tone_folder), "--output_dir", str(tmp_path / "out"), "--mixup_alpha", "0.4",
             "--teacher_cache_dir", str(tmp_path / "cache"), "--max_length_seconds", "0.5", "--num_train_epochs",
             "1", "--save_strategy", "no", "--eval_strategy", "no", "--load_best_model_at_end", "False",
             "--label_smoothing_factor", "0.1", "--disable_tqdm", "True"]
    distill_args, model_args, data_args, training_args = parse_distill_args(flags)
    assert data_args.mixup_alpha == 0.4
    metrics = run_distillation(distill_args, model_args, data_args, training_args)
    assert np.isfinite(metrics["train_loss"]) and "test_accuracy" in metrics
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "hfspeech-bcresnet"


def test_a_teacher_with_other_labels_is_named(tone_folder, tmp_path):
    other = save_random_baseline(tmp_path / "other", "cnn", ["a", "b", "c"], 0.5, conv_channels=[4], n_mels=16)
    with pytest.raises(UsageError, match="labels"):
        distill(tone_folder, other, tmp_path / "out", 0.5, tmp_path / "cache")


def test_a_teacher_that_is_not_a_model_folder_is_named_before_any_work(tone_folder, capsys):
    assert cli(["distill", "--teacher", str(tone_folder), "--student_model_type", "bcresnet", "--data_dir",
                str(tone_folder), "--output_dir", "x"]) == 2
    assert capsys.readouterr().err == f"error: --teacher {tone_folder}: not a model folder (no config.json)\n"


def test_distill_command_needs_a_teacher(capsys):
    assert cli(["distill", "--student_model_type", "bcresnet", "--output_dir", "x"]) == 2
    assert "--teacher" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value, error", [
    ("--teacher_batch_size", "0", "--teacher_batch_size must be at least 1, got 0"),
    ("--teacher_batch_size", "-1", "--teacher_batch_size must be at least 1, got -1"),
    ("--teacher_cache_dir", "notes.txt", "notes.txt: not a folder")])
def test_teacher_flags_that_crashed_after_the_data_was_prepared_are_refused_first(flag, value, error, tone_folder,
                                                                                    tmp_path, capsys):
    teacher = save_random_baseline(tmp_path / "teacher", "cnn", LABELS, 0.5, conv_channels=[4], n_mels=16)
    (tmp_path / "notes.txt").write_text("mine")
    flags = ["--teacher_cache_dir", str(tmp_path / "cache"), flag, str(tmp_path / value) if "dir" in flag else value]
    assert cli(["distill", "--teacher", str(teacher), "--student_model_type", "cnn", "--data_dir", str(tone_folder),
                "--output_dir", str(tmp_path / "out"), "--max_steps", "1", *flags]) == 2
    assert error in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_the_student_is_never_written_over_its_teacher(tone_folder, tmp_path, capsys):
    teacher = save_random_baseline(tmp_path / "teacher", "cnn", LABELS, 0.5, conv_channels=[4], n_mels=16)
    (teacher / "runs").mkdir()  # as the recipe leaves a run (its logs): the folder reads as a run to resume
    before = {p.name: p.read_bytes() for p in teacher.iterdir() if p.is_file()}
    assert cli(["distill", "--teacher", str(teacher), "--student_model_type", "cnn", "--data_dir", str(tone_folder),
                "--output_dir", str(teacher), "--max_steps", "1"]) == 2
    assert "the teacher's own folder" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in teacher.iterdir() if p.is_file()} == before
