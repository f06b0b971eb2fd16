"""One run's flags must not reach the next run in the same process (a notebook, a sweep, `main()` twice).

transformers < 5 hands `--bf16` and `--torch_compile` to accelerate through `os.environ` and reads them back on the
next `TrainingArguments` (huggingface/transformers#29510): a `--bf16` run made every later run train under bf16
autocast, and the trained model kept an autocast `forward`, so its logits differed from the saved model's
(tests/test_finetune_ssl.py::test_feature_encoder_freezing_really_freezes failed after a `--bf16` parse)."""

from __future__ import annotations

import os

import pytest

from hfspeech.training.command_line import parse_args
from tests.conftest import TINY_CNN

PRECISION = "ACCELERATE_MIXED_PRECISION"


@pytest.fixture
def clean_accelerate_environment(monkeypatch):
    """The process as started without `accelerate launch`; monkeypatch puts the variables back afterwards."""
    for name in [name for name in os.environ if name.startswith("ACCELERATE_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv(PRECISION, raising=False)  # registered, so a value written by the test is removed too


def test_a_bf16_run_does_not_make_the_next_run_bf16(clean_accelerate_environment, tone_folder, tmp_path):
    from hfspeech.training.run import setup_training

    assert parse_args(["--bf16", "--use_cpu", "--output_dir", str(tmp_path / "first")])[2].bf16
    second = parse_args(["--data_dir", str(tone_folder), "--output_dir", str(tmp_path / "second"),
                         "--config_overrides", TINY_CNN, "--max_steps", "1", "--max_length_seconds", "0.5"])
    assert not second[2].bf16
    assert setup_training(*second).trainer.accelerator.mixed_precision == "no"


def test_torch_compile_does_not_reach_the_next_run(clean_accelerate_environment, tmp_path):
    parse_args(["--torch_compile", "--output_dir", str(tmp_path)])
    assert os.environ.get("ACCELERATE_DYNAMO_BACKEND") == "inductor"  # read by this run's Accelerator
    parse_args(["--output_dir", str(tmp_path)])
    assert os.environ.get("ACCELERATE_DYNAMO_BACKEND") is None  # not `in os.environ`: a failure would print it all


def test_the_precision_accelerate_launch_set_is_kept(clean_accelerate_environment, monkeypatch, tmp_path):
    """`accelerate launch --mixed_precision bf16 recipes/finetune.py`: transformers' documented way, no --bf16."""
    monkeypatch.setenv(PRECISION, "bf16")
    parse_args(["--bf16", "--use_cpu", "--output_dir", str(tmp_path)])
    parse_args(["--output_dir", str(tmp_path)])
    assert os.environ[PRECISION] == "bf16"
    monkeypatch.setenv(PRECISION, "fp16")  # set by the user between two runs: theirs, not undone
    parse_args(["--output_dir", str(tmp_path)])
    assert os.environ[PRECISION] == "fp16"
