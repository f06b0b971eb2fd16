"""Multi-label edge cases: classes without positives in the scored split, and label cells written in odd ways."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hfspeech.evaluation.metrics import MultiLabelMetrics
from hfspeech.evaluation.report import write_multilabel_report


def test_a_class_without_positives_is_left_out_of_the_macro_f1_not_counted_as_zero():
    scores = np.array([[0.9, 0.1, 0.2], [0.8, 0.7, 0.1], [0.2, 0.9, 0.3], [0.1, 0.2, 0.1]])
    truth = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])  # class 2: no positive, never predicted
    metrics = MultiLabelMetrics().compute(predictions=scores, references=truth, label_names=list("abc"),
                                          per_class=True)
    assert metrics["macro_f1"] == metrics["macro_precision"] == metrics["macro_recall"] == 1.0  # was 2/3
    assert metrics["f1_num_classes"] == 2 and metrics["map_num_classes"] == 2
    assert metrics["per_class"]["c"] == {"ap": None, "roc_auc": None, "f1": None, "precision": None,
                                         "recall": None, "threshold": 0.5, "support": 0}


def test_a_false_alarm_on_a_class_without_positives_still_counts():
    scores = np.array([[0.9, 0.8], [0.1, 0.1]])
    truth = np.array([[1, 0], [0, 0]])  # class 1 has no positive but fires on clip 0
    metrics = MultiLabelMetrics().compute(predictions=scores, references=truth, label_names=["a", "b"],
                                          per_class=True)
    assert metrics["per_class"]["b"]["f1"] == 0.0 and metrics["per_class"]["b"]["recall"] is None
    assert metrics["macro_f1"] == 0.5 and metrics["f1_num_classes"] == 2


def test_the_report_writes_undefined_values_as_null(tmp_path):
    scores = np.array([[0.9, 0.1], [0.1, 0.2]])
    metrics = write_multilabel_report(str(tmp_path), scores, np.array([[1, 0], [0, 0]]), ["a", "b"], [0.5, 0.5])
    report = json.loads((tmp_path / "test_multilabel_report.json").read_text())
    assert metrics["macro_f1"] == 1.0 and report["per_class"]["b"]["f1"] is None
    assert "null" in report["note"] and (tmp_path / "test_per_class_ap.png").is_file()


def write_clips(folder, count: int) -> list[str]:
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        sf.write(folder / f"c{i}.wav", np.zeros(1600, dtype=np.float32), 16000)
    return [f"c{i}.wav" for i in range(count)]


@pytest.mark.parametrize("cells, problem", [
    ([["beep", "hum"], "click", []], 'is "click"'),  # lists and strings mixed: an ArrowTypeError traceback
    ([["beep"], 4, ["hum"]], "is 4"),
    ([[["beep"]], ["hum"], ["click"]], "inside its list"),  # was the label "['beep']"
])
def test_jsonl_label_cells_of_mixed_kinds_are_a_data_error(tmp_path, cells, problem):
    from hfspeech.data.loading import DataError, load_audio_dataset

    paths = write_clips(tmp_path, len(cells))
    manifest = tmp_path / "labels.jsonl"
    manifest.write_text("".join(json.dumps({"path": p, "labels": c}) + "\n" for p, c in zip(paths, cells)))
    with pytest.raises(DataError, match=problem):
        load_audio_dataset(train_file=str(manifest))


def test_jsonl_lists_with_nulls_still_load(tmp_path):
    from hfspeech.data.loading import load_audio_dataset

    paths = write_clips(tmp_path, 3)
    manifest = tmp_path / "labels.jsonl"
    manifest.write_text("".join(json.dumps({"path": p, "labels": c}) + "\n"
                                for p, c in zip(paths, [["beep"], None, []])))
    assert load_audio_dataset(train_file=str(manifest))["train"]["label"] == [["beep"], None, []]


def test_an_empty_label_separator_is_a_usage_error(tmp_path, capsys):
    from hfspeech.cli import main as cli

    paths = write_clips(tmp_path, 2)
    (tmp_path / "labels.csv").write_text("path,labels\n" + "".join(f"{p},beep;hum\n" for p in paths))
    assert cli(["train", "--train_file", str(tmp_path / "labels.csv"), "--problem_type", "multi_label_classification",
                "--label_separator", "", "--output_dir", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and error.endswith("--label_separator must not be empty (default ';', as in "
                                                          "'dog;siren')") and "\n" not in error


def encoded_csv(tmp_path, cells: list[str], **options):
    from hfspeech.data.labels import encode_labels
    from hfspeech.data.loading import load_audio_dataset

    paths = write_clips(tmp_path, len(cells))
    (tmp_path / "labels.csv").write_text("path,labels\n" + "".join(f"{p},{c}\n" for p, c in zip(paths, cells)))
    return encode_labels(load_audio_dataset(train_file=str(tmp_path / "labels.csv")), **options)["train"]


def test_a_separator_that_splits_no_cell_while_another_would_is_a_data_error(tmp_path):
    """`--label_separator "|"` on `beep;hum` cells trained on the class 'beep;hum'."""
    from hfspeech.data.loading import DataError

    with pytest.raises(DataError, match=r"holds ';' but no cell holds the label separator '\|'"):
        encoded_csv(tmp_path, ["beep;hum", "click"], multi_label=True, separator="|")


def test_multi_label_cells_in_any_form_give_the_same_labels(tmp_path):
    train = encoded_csv(tmp_path, ["beep;beep", "beep ; hum", "", "click"], multi_label=True)
    assert train.features["label"].feature.names == ["beep", "click", "hum"]
    assert train["label"] == [[0], [0, 2], [], [1]]


def test_single_label_data_with_joined_labels_warns(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="hfspeech.data"):
        encoded_csv(tmp_path, ["beep;hum", "click"])
    assert "--problem_type multi_label_classification" in caplog.text
