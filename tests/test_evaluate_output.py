"""`hfspeech evaluate` records which model its reports are of, and says so when it replaces another model's."""

from __future__ import annotations

import json

from hfspeech.cli import main as cli
from tests.conftest import TONE_CLASSES, save_random_baseline, write_tone_folder


def _evaluate(model, data, out) -> dict:
    assert cli(["evaluate", str(model), "--data_dir", str(data), "--output_dir", str(out)]) == 0
    return json.loads((out / "train_metrics.json").read_text())


def test_evaluating_another_model_into_the_same_folder_is_said(tmp_path, caplog):
    data = write_tone_folder(tmp_path / "tones", clips_per_class=2)
    first, second = (save_random_baseline(tmp_path / name, "cnn", list(TONE_CLASSES), 0.5, conv_channels=[4, 8],
                                          n_mels=16) for name in ("first", "second"))
    out = tmp_path / "evaluation"
    assert _evaluate(first, data, out)["model"] == str(first)
    with caplog.at_level("WARNING", logger="hfspeech"):
        _evaluate(first, data, out)  # the same model again: its reports updated, nothing to say
        assert "replacing the reports" not in caplog.text
        assert _evaluate(second, data, out)["model"] == str(second)
    warned = [r.getMessage() for r in caplog.records if "replacing the reports" in r.getMessage()]
    assert len(warned) == 1 and str(first) in warned[0] and str(second) in warned[0]
