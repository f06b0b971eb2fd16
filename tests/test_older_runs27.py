"""Runs saved by earlier hfspeech versions, used with today's code.

Runs, exports and staged repos of four earlier commits (1bc60aa, d97cbe6, 89fb7da, b0b059c) were checked by hand
with today's predict / evaluate / stream / serve / export / stage / average / resume: same scores within float
noise. What broke were configs that the checks added since (761c92b, eb58a8b) refuse, though the older version
trained and saved them; each test builds such a config.json from a small dict.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import run_cli_output, save_random_baseline


def _rewrite_config(folder, **values) -> None:
    """config.json as an earlier hfspeech saved it: the same weights, values today's checks refuse."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(values)
    path.write_text(json.dumps(config, indent=2))


def test_a_freq_mask_wider_than_the_bins_saved_earlier_still_loads_with_the_same_logits(tmp_path, caplog):
    """Before 761c92b a run with 6 mel bins and the default SpecAugment width 8 trained and saved; today's check
    refused its config.json in every command (predict, evaluate, serve, export), though the masks only ever ran in
    training. It loads now with the width narrowed to the bins, logged, and computes the same logits."""
    from transformers import AutoModelForAudioClassification

    folder = save_random_baseline(tmp_path / "old", "cnn", ["a", "b"], 0.5, n_mels=6, conv_channels=[4, 8],
                                  apply_spec_augment=False)
    clip = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 8000)).astype(np.float32))
    before = AutoModelForAudioClassification.from_pretrained(folder).eval()(clip).logits
    _rewrite_config(folder, apply_spec_augment=True, freq_mask_width=8)

    with caplog.at_level(logging.WARNING):
        model = AutoModelForAudioClassification.from_pretrained(folder).eval()

    assert model.config.freq_mask_width == 6 and model.config.apply_spec_augment
    assert "freq_mask_width 8 is wider than the 6 feature bins" in caplog.text
    torch.testing.assert_close(model(clip).logits, before)


def test_a_freq_mask_wider_than_the_bins_is_still_refused_for_a_new_model():
    from hfspeech.models import BASELINE_MODELS

    with pytest.raises(ValueError, match="must not exceed the 6 feature bins"):
        BASELINE_MODELS["cnn"].config_class(n_mels=6, apply_spec_augment=True, freq_mask_width=8)


def test_predict_on_an_earlier_run_with_an_odd_n_fft_names_its_config_and_the_way_out(tmp_path, capsys):
    """An odd n_fft trained and saved before eb58a8b (the radix-2 front end); today's front end cannot compute it.
    predict said only 'n_fft must be even ... got 401', naming no file and not why a working run stopped."""
    folder = save_random_baseline(tmp_path / "old", "cnn", ["a", "b"], 0.5, n_mels=16, conv_channels=[4, 8])
    _rewrite_config(folder, n_fft=401)
    clip = tmp_path / "clip.wav"
    sf.write(clip, np.zeros(8000, dtype=np.float32), 16000)

    code, out, err = run_cli_output(["predict", str(folder), str(clip)], capsys)

    assert code == 2 and out == ""
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith(f"error: {folder / 'config.json'}: n_fft must be even")
    assert "earlier hfspeech" in line and "retrained" in line and "export made from it before still runs" in line


def test_stage_and_export_refuse_an_earlier_run_with_an_odd_n_fft_before_writing(tmp_path, capsys):
    """stage copied such a run into a Hub repo that no version of the staged code could load (exit 0); export
    wrapped the reason in 'cannot be read as a transformers config'. Both stop now, naming config.json, and
    stage writes nothing."""
    folder = save_random_baseline(tmp_path / "old", "cnn", ["a", "b"], 0.5, n_mels=16, conv_channels=[4, 8])
    _rewrite_config(folder, n_fft=401)

    code, _, err = run_cli_output(["stage", str(folder), str(tmp_path / "repo")], capsys)
    assert code == 2 and not (tmp_path / "repo").exists()
    assert err.strip().startswith("error: ") and f"{folder / 'config.json'}: n_fft must be even" in err
    assert "earlier hfspeech" in err and "\n" not in err.strip()

    code, _, err = run_cli_output(["export", str(folder), "--format", "onnx", "--output", str(tmp_path / "x")],
                                  capsys)
    assert code == 2 and "cannot be read as a transformers config" not in err
    assert f"{folder / 'config.json'}: n_fft must be even" in err and "earlier hfspeech" in err
