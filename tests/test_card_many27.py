"""A model of hundreds of classes: its staged card keeps the per-class tables folded away under `<details>`
(the summary numbers stay in view) and stays valid markdown; the training log names a few of its classes and
how many more, not every one. A model of a few classes is described as before."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import save_random_baseline
from hfspeech.hub import stage_run
from hfspeech.hub.card_classes import COLLAPSE_AFTER
from hfspeech.training.command_line import parse_args
from hfspeech.training.run import load_data


def labels_of(num_classes: int) -> list[str]:
    return [f"class_{i:03d}" for i in range(num_classes)]


def staged_card(tmp_path: Path, num_classes: int) -> str:
    """The card `hfspeech stage` writes for a random tiny CNN of `num_classes` classes with test records."""
    run, labels = tmp_path / f"run{num_classes}", labels_of(num_classes)
    save_random_baseline(run, "cnn", labels, 0.02, conv_channels=[4, 8], n_mels=16)
    (run / "metrics.json").write_text(json.dumps({"test_accuracy": 0.625, "test_macro_f1": 0.5,
                                                  "num_train_clips": 10 * num_classes,
                                                  "num_test_clips": 2 * num_classes}))
    report = {label: {"precision": 0.5, "recall": 0.5, "f1-score": 0.5, "support": 2} for label in labels}
    (run / "test_classification_report.json").write_text(json.dumps({**report, "accuracy": 0.625}))
    stage_run(run, tmp_path / f"staged{num_classes}", repo_id="someone/model")
    return (tmp_path / f"staged{num_classes}" / "README.md").read_text()


def section(card: str, title: str) -> str:
    return card.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0].strip()


def folded_table(text: str) -> str:
    """The table inside the one `<details>` block of `text`, checked to be markdown the Hub renders: a blank line
    after `<summary>` and before `</details>` (without them the table is shown as raw `|` text)."""
    match = re.fullmatch(r"(.*?)<details>\n<summary>[^<\n]+</summary>\n\n(\|.*\|)\n\n</details>(.*)", text, re.S)
    assert match, text[:300]
    assert "<details>" not in match[1] + match[3]
    return match[2]


def test_a_card_of_hundreds_of_classes_folds_its_per_class_tables(tmp_path):
    card = staged_card(tmp_path, 500)
    labels = folded_table(section(card, "Labels"))
    assert len(labels.splitlines()) == 2 + 500 and "| 499 | class\\_499 |" in labels
    results = section(card, "Results")
    assert results.startswith("On the test split (1000 clips): accuracy 0.625, macro-F1 0.500.")  # in view
    per_class = folded_table(results.split("\n\n", 1)[1])
    assert len(per_class.splitlines()) == 2 + 500 and "| class\\_000 | 0.500 | 0.500 | 0.500 | 2 |" in per_class
    assert "<summary>All 500 labels</summary>" in card
    assert "of each of the 500 classes</summary>" in card
    assert len(card.splitlines()) < 1200  # every row is still there


@pytest.mark.parametrize("num_classes", [3, COLLAPSE_AFTER])
def test_a_card_of_a_few_classes_shows_its_tables_open(tmp_path, num_classes):
    card = staged_card(tmp_path, num_classes)
    assert "<details>" not in card and "<summary>" not in card
    assert section(card, "Labels").startswith("| id | label |\n| --- | --- |\n| 0 | class\\_000 |")
    assert f"| class\\_{num_classes - 1:03d} | 0.500 | 0.500 | 0.500 | 2 |" in section(card, "Results")


def loaded_with_log(tmp_path: Path, num_classes: int, caplog) -> str:
    """The `hfspeech.train` log of loading an audio folder of `num_classes` classes, two clips each."""
    rng = np.random.default_rng(0)
    for label in labels_of(num_classes):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(2):
            sf.write(tmp_path / "data" / label / f"{i}.wav", rng.normal(0, 0.1, 1600).astype(np.float32), 16000)
    model_args, data_args, training_args = parse_args(
        ["--data_dir", str(tmp_path / "data"), "--output_dir", str(tmp_path / "run"), "--model_type", "cnn",
         "--test_split_percentage", "0", "--validation_split_percentage", "0", "--report_to", "none"])
    with caplog.at_level(logging.INFO, logger="hfspeech.train"):
        data = load_data(model_args, data_args, training_args, 16000)
    assert len(data.label_names) == num_classes
    return "\n".join(r.getMessage() for r in caplog.records if r.name == "hfspeech.train" and "classes:" in
                     r.getMessage())


def test_the_training_log_names_a_few_of_many_classes_and_counts_the_rest(tmp_path, caplog):
    line = loaded_with_log(tmp_path, 45, caplog)
    assert line.startswith("45 classes: class_000, class_001, class_002")
    assert "class_019 and 25 more;" in line and "class_020" not in line and "class_044" not in line


def test_the_training_log_names_every_one_of_a_few_classes(tmp_path, caplog):
    line = loaded_with_log(tmp_path, 3, caplog)
    assert line.startswith("3 classes: class_000, class_001, class_002;") and "more" not in line


def test_a_multi_label_card_of_many_labels_folds_its_tables_and_keeps_the_note_in_view():
    from hfspeech.hub.card_classes import labels_table, multi_label_per_class_table

    labels = labels_of(40)
    thresholds = folded_table(labels_table(labels, [0.5] * 40))
    assert thresholds.splitlines()[0] == "| id | label | threshold |" and "| 39 | class\\_039 | 0.500 |" in thresholds
    report = {"per_class": {label: {"ap": 0.5, "roc_auc": None, "f1": 0.5, "precision": 0.5, "recall": 0.5,
                                    "threshold": 0.5, "support": 2} for label in labels}}
    table, note = multi_label_per_class_table(report, labels, num_clips=8).rsplit("\n\n", 1)
    assert len(folded_table(table).splitlines()) == 2 + 40 and note.startswith("n/a: not defined")
