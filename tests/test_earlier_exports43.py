"""An export left in a run folder by an earlier training of it runs the earlier weights once the run trains on.
`predict` warns of one whose traced_from.json says so; one by an hfspeech older than that record (audit UP: made by
d97cbe6, 8 of 48 top-1 labels changed after a resumed run, exit 0, no word) is now named when the weights change."""

from __future__ import annotations

import logging

from conftest import write_tone_folder
from hfspeech.cli import main
from test_overwrite42 import train as train_steps

def train(data, run, *flags):
    """14 training clips, 4 steps an epoch: each `--max_steps` ends an epoch (one that does not, run again, takes a
    step more: Trainer's resume)."""
    return train_steps(data, run, "--load_best_model_at_end", "False", *flags)  # the weights change at each run


WARNED = "was exported from the run's earlier weights; it runs the earlier model"


def test_training_on_names_an_earlier_export_with_or_without_its_record(tmp_path, caplog):
    tones = write_tone_folder(tmp_path / "data", clips_per_class=6, rates=(16000,))
    run = tmp_path / "run"
    assert train(["--data_dir", str(tones)], run, "--max_steps", "4", "--per_device_train_batch_size", "4") == 0
    assert main(["export", str(run), "--format", "onnx"]) == 0
    (run / "onnx" / "traced_from.json").unlink()  # as an older hfspeech left it
    caplog.set_level(logging.WARNING, logger="hfspeech.train")
    caplog.clear()
    assert train(["--data_dir", str(tones)], run, "--max_steps", "8", "--per_device_train_batch_size", "4") == 0
    assert sum(WARNED in record.getMessage() for record in caplog.records) == 1
    assert main(["export", str(run), "--format", "onnx"]) == 0  # its record written: this model's export
    caplog.clear()
    assert train(["--data_dir", str(tones)], run, "--max_steps", "12", "--per_device_train_batch_size", "4") == 0
    assert sum(WARNED in record.getMessage() for record in caplog.records) == 1  # made from the 8-step weights
    assert main(["export", str(run), "--format", "onnx"]) == 0
    caplog.clear()
    assert train(["--data_dir", str(tones)], run, "--max_steps", "12", "--per_device_train_batch_size", "4") == 0
    assert not any(WARNED in record.getMessage() for record in caplog.records)  # nothing trained: it still matches
    (run / "onnx" / "traced_from.json").unlink()  # an older export again, of these very weights
    caplog.clear()
    assert train(["--data_dir", str(tones)], run, "--max_steps", "12", "--per_device_train_batch_size", "4") == 0
    assert not any(WARNED in record.getMessage() for record in caplog.records)  # review R4: it warned here
