"""The training loop does what transformers users expect of it (an audit of its behaviour, not its input checks):
gradient accumulation, every validation/test clip scored, the gain bound, transformers' all_results.json."""

from __future__ import annotations

import json

import pytest

from hfspeech.errors import UsageError
from hfspeech.training.command_line import parse_args
from hfspeech.training.run import main

from conftest import TINY_CNN

# lr 0 and no clipping: the model stays as it was, so the logged loss compares the runs' batches alone
FROZEN_STEPS = ["--learning_rate", "0", "--warmup_ratio", "0", "--max_grad_norm", "1e9", "--max_steps", "2",
                "--eval_strategy", "no", "--save_strategy", "no", "--max_length_seconds", "0.5", "--seed", "0",
                "--disable_tqdm", "True"]


def train_loss(data, output_dir, *flags) -> float:
    return main(["--data_dir", str(data), "--output_dir", str(output_dir), *FROZEN_STEPS, *flags])["train_loss"]


@pytest.mark.parametrize("model_type, flags", [
    ("whisper", ["--pool_clip_frames"]),  # a forward that takes **kwargs and ignores num_items_in_batch
    ("audio-spectrogram-transformer", ["--class_weighted_loss"]),  # the Trainer's own class-weighted loss
])
def test_gradient_accumulation_trains_on_the_mean_loss_of_the_batches(tone_folder, tmp_path, model_type, flags):
    """Trainer divides a loss by --gradient_accumulation_steps only for models without loss kwargs: these losses
    (batch means) were N times too large, in the log and in the gradients, with N accumulation steps."""
    from hfspeech.synthetic.tiny import save_tiny_ssl_model

    model = save_tiny_ssl_model(str(tmp_path / "tiny"), model_type, labels=["high", "low", "noise"])
    flags = ["--model_name_or_path", str(model), *flags]
    one_batch = train_loss(tone_folder, tmp_path / "a", "--per_device_train_batch_size", "8", *flags)
    accumulated = train_loss(tone_folder, tmp_path / "b", "--per_device_train_batch_size", "4",
                             "--gradient_accumulation_steps", "2", *flags)
    assert accumulated == pytest.approx(one_batch, rel=0.05)  # was twice as large


def test_drop_last_still_scores_every_validation_and_test_clip(tone_folder, tmp_path):
    """transformers' --dataloader_drop_last also drops the last evaluation batch: the best model was picked on
    4 of 6 validation clips and the test report counted 4 of the 6 test clips metrics.json announced."""
    output_dir = tmp_path / "run"
    metrics = main(["--data_dir", str(tone_folder), "--output_dir", str(output_dir), "--config_overrides", TINY_CNN,
                    "--num_train_epochs", "1", "--max_length_seconds", "0.5", "--dataloader_drop_last", "True",
                    "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "4", "--seed", "0",
                    "--disable_tqdm", "True"])
    matrix = json.loads((output_dir / "test_confusion_matrix.json").read_text())["matrix"]
    assert sum(map(sum, matrix)) == metrics["num_test_clips"]
    state = json.loads((output_dir / "trainer_state.json").read_text())
    validation = [entry for entry in state["log_history"] if "eval_accuracy" in entry]
    assert all(round(entry["eval_accuracy"] * metrics["num_validation_clips"], 6).is_integer()
               for entry in validation)  # accuracies out of 6 clips, not out of 4 (0.25 before)
    # the numbers where transformers' examples leave them, as metrics.json has them
    assert json.loads((output_dir / "all_results.json").read_text()) == metrics


def test_drop_last_with_fewer_clips_than_a_batch_is_one_line(tone_folder, tmp_path):
    """Every training batch dropped: transformers' `max_steps must be set` ValueError traceback, now one line."""
    with pytest.raises(UsageError, match=r"--dataloader_drop_last: the \d+ training clips make no full batch of 64"):
        main(["--data_dir", str(tone_folder), "--output_dir", str(tmp_path / "run"), "--config_overrides", TINY_CNN,
              "--max_length_seconds", "0.5", "--dataloader_drop_last", "True", "--per_device_train_batch_size", "64"])


def test_gain_beyond_forty_db_is_refused_as_the_flags_are_read(tmp_path):
    """--gain_db 500 scaled clips by up to 1e25: features went inf and the run trained at chance, without a word."""
    common = ["--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "run")]
    assert parse_args(common + ["--gain_db", "40"])[1].gain_db == 40
    with pytest.raises(UsageError, match=r"^--gain_db must be at most 40 .* got 500$"):
        parse_args(common + ["--gain_db", "500"])
