"""A multi-label run trained with `--tune_thresholds False` (docs/multilabel.md: "keep 0.5 everywhere") ended on
`AttributeError: 'CNNAudioConfig' object has no attribute 'label_thresholds'` in its test pass, after training,
leaving no metrics.json (session 41, audit DR1). Its test pass now records the thresholds it applied: 0.5."""

from __future__ import annotations

import json

from conftest import run_cli_output
from hfspeech.synthetic.events import generate_event_dataset


def test_a_run_that_tuned_no_thresholds_finishes_and_records_the_ones_it_applied(tmp_path, capsys):
    data = generate_event_dataset(tmp_path / "events", num_clips=24, sampling_rate=8000, clip_seconds=0.7)
    run = tmp_path / "run"
    code, _, err = run_cli_output([
        "train", "--train_file", str(data / "labels.csv"), "--problem_type", "multi_label_classification",
        "--output_dir", str(run), "--num_train_epochs", "1", "--max_length_seconds", "0.7", "--sampling_rate",
        "8000", "--tune_thresholds", "False", "--config_overrides", '{"conv_channels": [4, 8], "n_mels": 16}'], capsys)
    assert code == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert "label_thresholds" not in config  # none tuned, none saved
    assert set(metrics["label_thresholds"].values()) == {0.5} and "test_map_macro" in metrics
