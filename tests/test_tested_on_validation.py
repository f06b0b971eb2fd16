"""A run with no test split is tested on its validation split: where that split also chose the best checkpoint,
the numbers are optimistic and the run says so where they are read (metrics.json, data_report.json, the card)."""

from __future__ import annotations

import json

from hfspeech.training.run import main

from conftest import TINY_CNN

RUN = ["--config_overrides", TINY_CNN, "--num_train_epochs", "1", "--max_length_seconds", "0.5", "--seed", "0",
       "--disable_tqdm", "True"]


def _train(data, output_dir, *flags) -> dict:
    return main(["--data_dir", str(data), "--output_dir", str(output_dir), *RUN, *flags])


def test_no_test_split_warns_that_the_test_numbers_are_the_validation_splits(tone_folder, tmp_path):
    metrics = _train(tone_folder, tmp_path / "run", "--test_split_percentage", "0")
    assert metrics["test_split"] == "validation"
    warnings = [w for w in metrics.get("data_warnings", []) if w.startswith("no test split")]
    assert warnings and "chose the best checkpoint" in warnings[0]
    assert warnings[0] in json.loads((tmp_path / "run" / "data_report.json").read_text())["warnings"]


def test_a_held_out_test_split_or_an_unused_validation_split_is_not_warned(tone_folder, tmp_path):
    held_out = _train(tone_folder, tmp_path / "a")
    assert held_out["test_split"] == "test"
    unused = _train(tone_folder, tmp_path / "b", "--test_split_percentage", "0", "--load_best_model_at_end", "False",
                    "--eval_strategy", "no", "--save_strategy", "no")
    assert unused["test_split"] == "validation"  # validation scored nothing before: a held-out split
    for metrics in (held_out, unused):
        assert not any(w.startswith("no test split") for w in metrics.get("data_warnings", []))
