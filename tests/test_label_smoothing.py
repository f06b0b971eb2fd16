"""Training flags that cannot apply to the model (label smoothing, an attention mask): checked, or applied by every loss."""

import json

import pytest

from conftest import TINY_CNN
from hfspeech.cli import main as cli


@pytest.mark.parametrize("extra, expected", [
    (["--label_smoothing_factor", "1.5"], "--label_smoothing_factor must be in [0, 1), got 1.5"),
    (["--label_smoothing_factor", "-0.1"], "--label_smoothing_factor must be in [0, 1), got -0.1"),
    (["--label_smoothing_factor", "0.1", "--problem_type", "multi_label_classification"], "a multi-label model trains on one sigmoid per label"),
])
def test_label_smoothing_that_cannot_apply_is_one_line_before_any_data(extra, expected, tmp_path, capsys):
    assert cli(["train", "--data_dir", str(tmp_path / "no_such_data"), "--output_dir", str(tmp_path / "out"),
                "--model_type", "cnn", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]


def _first_step_loss(tone_folder, out, *extra) -> float:
    from hfspeech.training.run import main

    main(["--data_dir", str(tone_folder), "--output_dir", str(out), "--model_type", "cnn",
          "--config_overrides", TINY_CNN, "--max_steps", "1", "--per_device_train_batch_size", "8",
          "--max_length_seconds", "0.5", "--seed", "0", "--class_weighted_loss", "--eval_strategy", "no",
          "--save_strategy", "no", *extra])
    return json.loads((out / "metrics.json").read_text())["train_loss"]


def test_the_class_weighted_loss_applies_label_smoothing(tone_folder, tmp_path):
    plain = _first_step_loss(tone_folder, tmp_path / "plain")
    smoothed = _first_step_loss(tone_folder, tmp_path / "smoothed", "--label_smoothing_factor", "0.5")
    assert smoothed != pytest.approx(plain, rel=1e-4)


def test_an_attention_mask_for_a_model_that_takes_none_is_one_line(tone_folder, tmp_path, capsys):
    from hfspeech.synthetic.tiny import save_tiny_ssl_model

    whisper = save_tiny_ssl_model(str(tmp_path / "whisper"), "whisper", labels=["a", "b"])
    assert cli(["train", "--data_dir", str(tone_folder), "--output_dir", str(tmp_path / "out"),
                "--model_name_or_path", str(whisper), "--return_attention_mask", "True", "--max_steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --return_attention_mask True: WhisperForAudioClassification takes no attention")


@pytest.mark.parametrize("overrides, expected", [
    ('{"conv_chanels": [4, 8]}', "--config_overrides: unknown key(s) ['conv_chanels'] for model_type 'hfspeech-cnn' (did you mean ['conv_channels']?)"),
    ('{"n_mels": 0}', "n_mels must be a whole number >= 1, got 0"),
])
def test_config_overrides_are_checked_before_the_data_is_read(overrides, expected, tmp_path, capsys):
    assert cli(["train", "--data_dir", str(tmp_path / "no_such_data"), "--output_dir", str(tmp_path / "out"),
                "--model_type", "cnn", "--config_overrides", overrides]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
