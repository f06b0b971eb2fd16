"""Metrics files are strict JSON: an undefined score is null, not the bare `NaN` that jq and browsers refuse."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from hfspeech.cli import main as cli
from tests.conftest import save_random_baseline, synth_clip


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def test_an_undefined_score_is_written_as_null(tmp_path):
    """Every clip has label a and none has b: no class has both values, so ROC-AUC is undefined for all."""
    labels = ["a", "b"]
    model = save_random_baseline(tmp_path / "model", "cnn", labels, 0.5, conv_channels=[4, 8], n_mels=16,
                                 problem_type="multi_label_classification")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(4):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, synth_clip("noise", rng, 16000, 0.5), 16000)
        rows.append({"path": str(path), "labels": ["a"]})
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "eval"
    assert cli(["evaluate", "--model", str(model), "--test_file", str(tmp_path / "test.jsonl"),
                "--output_dir", str(out)]) == 0
    metrics = _strict((out / "test_metrics.json").read_text())
    assert metrics["roc_auc_macro"] is None and metrics["map_macro"] == 1.0
    assert metrics["num_clips"] == 4
    report = _strict((out / "test_multilabel_report.json").read_text())
    assert report["metrics"]["roc_auc_macro"] is None


def test_json_ready_reaches_nested_values():
    from hfspeech.evaluation.report import json_ready

    ready = json_ready({"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": {"d": np.float64("nan")}})
    assert _strict(json.dumps(ready)) == {"a": None, "b": [None, 1.5], "c": {"d": None}}
