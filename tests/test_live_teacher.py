"""Function matching (`hfspeech distill --teacher_on_augmented`): the teacher labels the very augmented clips the
student trains on, gives the cached path's logits on the same clips, and pulls the student towards itself on
clips neither saw."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset

from conftest import save_random_baseline, synth_clip
from hfspeech.training.distill import attach_teacher, parse_distill_args
from hfspeech.training.live_teacher import LiveTeacher, RawWaveformCollator
from hfspeech.training.run import run_training
from hfspeech.training.soft_targets import kl_to_teacher
from hfspeech.training.teacher_cache import compute_teacher_logits
from test_distill import LABELS, STUDENT, distill, logits_on

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return save_random_baseline(tmp_path_factory.mktemp("teacher") / "cnn", "cnn", LABELS, 0.5,
                                conv_channels=[4, 8], n_mels=16, apply_spec_augment=False)


def test_live_logits_of_padded_clips_at_another_rate_are_the_cached_paths(teacher):
    rng = np.random.default_rng(0)
    clips = [synth_clip(kind, rng, 8000, seconds) for kind, seconds in [("low", 0.3), ("high", 0.5), ("noise", 0.4)]]
    order = ["noise", "high", "low"]  # another label order than the teacher's: columns follow the student's
    cached = compute_teacher_logits(str(teacher), Dataset.from_dict({"input_values": clips}), 8000, order)
    batch = RawWaveformCollator(lambda examples: {})([{"teacher_waveform": c} for c in clips])
    live = LiveTeacher(str(teacher), order, 8000)(batch["teacher_waveform"], batch["teacher_lengths"])
    np.testing.assert_allclose(live.numpy(), cached, atol=1e-4)


class RecordingTeacher:
    """The run's live teacher, keeping each batch it was shown (a probe around the real teacher)."""

    def __init__(self, teacher):
        self.teacher, self.seen = teacher, []

    def __call__(self, waveforms, lengths):
        self.seen.append([w[: int(n)].numpy().copy() for w, n in zip(waveforms, lengths)])
        return self.teacher(waveforms, lengths)


def test_the_teacher_sees_the_augmented_clips_the_student_trains_on(tone_folder, teacher, tmp_path):
    flags = ["--teacher", str(teacher), "--teacher_on_augmented", "True", "--student_model_type", "bcresnet",
             "--config_overrides", STUDENT, "--data_dir", str(tone_folder), "--output_dir", str(tmp_path / "out"),
             "--max_length_seconds", "0.5", "--num_train_epochs", "1", "--per_device_train_batch_size", "8",
             "--speed_factors", "0.9,1.1", "--noise_snr_db", "10,20", "--save_strategy", "no", "--eval_strategy",
             "no", "--load_best_model_at_end", "False", "--disable_tqdm", "True", "--max_train_samples", "16"]
    distill_args, model_args, data_args, training_args = parse_distill_args(flags)
    student_inputs, probes = [], []

    def attach(setup):
        attach_teacher(setup, distill_args)
        probes.append(RecordingTeacher(setup.trainer.live_teacher))
        setup.trainer.live_teacher = probes[0]
        setup.trainer.model.register_forward_pre_hook(
            lambda module, args, kwargs: student_inputs.append(kwargs) if module.training else None,
            with_kwargs=True)

    run_training(model_args, data_args, training_args, before_training=attach)
    seen = [clip for batch in probes[0].seen for clip in batch]
    assert len(seen) == 16
    students = [values[mask.bool()].numpy() for inputs in student_inputs
                for values, mask in zip(inputs["input_values"], inputs["attention_mask"])]
    for raw, student in zip(seen, students):  # the student's copy is the same clip, normalised by its extractor
        np.testing.assert_allclose((raw - raw.mean()) / np.sqrt(raw.var() + 1e-7), student, atol=1e-3)


def test_function_matching_brings_the_student_closer_to_the_teacher_than_the_labels(tone_folder, teacher, tmp_path):
    augment = ["--speed_factors", "0.9,1.0,1.1", "--noise_snr_db", "10,30", "--mixup_alpha", "0.4"]
    matched = distill(tone_folder, teacher, tmp_path / "matched", 1.0, tmp_path / "cache",
                      ["--teacher_on_augmented", "True", *augment])
    labels_only = distill(tone_folder, teacher, tmp_path / "labels-only", 0.0, tmp_path / "cache", augment)
    rng = np.random.default_rng(99)  # clips generated with a seed no split was made from
    clips = [synth_clip(kind, rng, 16000, rng.uniform(0.3, 0.5)) for kind in ["low", "high", "noise"] * 10]
    target = logits_on(teacher, clips)
    assert kl_to_teacher(logits_on(matched, clips), target) < 0.5 * kl_to_teacher(logits_on(labels_only, clips), target)
