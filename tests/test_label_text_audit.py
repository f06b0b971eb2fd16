"""The strings users choose as class names survive every stage as written: `01`, `1.0`, `NA`, `None`, `a|b`,
`_silence_`, `<unk>`, `$5`, `accuracy` train, land in config.json, predict's CSV/JSONL, the evaluation reports,
the plots and the model card unchanged; `café` typed and `café` from a macOS folder name are one class; what
cannot be a label (a line break, datasets' -1 "no label") is one line naming the file."""

from __future__ import annotations

import csv
import json
import logging
import re
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features

from conftest import TINY_CNN
from hfspeech.data.labels import encode_labels
from hfspeech.data.loading import load_audio_dataset
from hfspeech.errors import DataError
from hfspeech.evaluation.report import per_class_report, write_evaluation_report, write_multilabel_report

# Labels that pandas, YAML or markdown would read as something else, or that clash with a report's own keys.
TRICKY = ["01", "1", "1.0", "NA", "None", "a|b", "_silence_", "<unk>", "$x^$", "accuracy"]
NFC, NFD = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")


def write_clips(folder: Path, labels, per_label: int = 2) -> list[tuple[str, str]]:
    """(relative path, label) of `per_label` 0.5 s tones a label, a pitch of its own each."""
    folder.mkdir(parents=True, exist_ok=True)
    rng, rows, time = np.random.default_rng(0), [], np.arange(8000) / 16000
    for k, label in enumerate(labels):
        for i in range(per_label):
            clip = 0.3 * np.sin(2 * np.pi * (200 + 250 * k) * time) + 0.01 * rng.standard_normal(len(time))
            sf.write(folder / f"c{k}_{i}.wav", clip.astype(np.float32), 16000)
            rows.append((f"{folder.name}/c{k}_{i}.wav", label))
    return rows


def write_csv(path: Path, rows) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("path", "label"), *rows])
    return path


def encoded_names(multi_label: bool = False, **source) -> list[str]:
    dataset = encode_labels(load_audio_dataset(**source), multi_label=multi_label)
    feature = dataset["train"].features["label"]
    return list(getattr(feature, "feature", feature).names)


@pytest.fixture(scope="module")
def tricky_run(tmp_path_factory) -> Path:
    """A tiny CNN trained on a CSV manifest of the `TRICKY` labels, tested on the same clips (every class in it)."""
    from hfspeech.training.run import main as train

    root = tmp_path_factory.mktemp("tricky")
    manifest = write_csv(root / "train.csv", write_clips(root / "wav", TRICKY))
    train(["--train_file", str(manifest), "--validation_file", str(manifest), "--test_file", str(manifest),
           "--output_dir", str(root / "run"), "--model_type", "cnn", "--config_overrides", TINY_CNN,
           "--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--max_length_seconds", "0.5",
           "--report_to", "none", "--disable_tqdm", "True", "--seed", "0", "--save_strategy", "no"])
    return root / "run"


def test_tricky_labels_round_trip_through_config_and_reports(tricky_run):
    config = json.loads((tricky_run / "config.json").read_text())
    assert sorted(config["id2label"].values()) == sorted(TRICKY)
    assert {label: config["id2label"][str(i)] for label, i in config["label2id"].items()} == dict(zip(TRICKY, TRICKY))
    report = json.loads((tricky_run / "test_classification_report.json").read_text())
    assert all(report[label]["support"] == 2 for label in TRICKY)  # the class `accuracy` too
    assert report["overall accuracy"] == json.loads((tricky_run / "metrics.json").read_text())["test_accuracy"]
    matrix = json.loads((tricky_run / "test_confusion_matrix.json").read_text())
    assert matrix["labels"] == [config["id2label"][str(i)] for i in range(len(TRICKY))]
    assert (tricky_run / "test_confusion_matrix.png").stat().st_size > 0


def unescaped_cells(row: str) -> list[str]:
    """A GFM table row's cells as markdown shows them: split at `|` not escaped, backslash escapes removed."""
    cells = re.split(r"(?<!\\)\|", row.strip())[1:-1]
    return [re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", cell.strip()) for cell in cells]


def test_the_model_card_tables_show_each_label_as_written(tricky_run, tmp_path):
    from hfspeech.hub import stage_run

    stage_run(tricky_run, tmp_path / "staged", repo_id="someone/model")
    card = (tmp_path / "staged" / "README.md").read_text()
    labels_table = card.split("| id | label |", 1)[1].split("\n\n", 1)[0].strip().splitlines()[1:]
    assert [unescaped_cells(row) for row in labels_table] == [[str(i), label] for i, label in
                                                              enumerate(sorted(TRICKY))]
    per_class = card.split("| label | precision | recall | F1 | clips |", 1)[1].split("\n\n", 1)[0]
    rows = [unescaped_cells(row) for row in per_class.strip().splitlines()[1:]]
    assert all(len(cells) == 5 for cells in rows) and [cells[0] for cells in rows] == sorted(TRICKY)
    assert "<unk>" not in card.replace("`<unk>`", "")  # an HTML tag, shown as nothing


def test_predictions_of_tricky_labels_read_back_from_csv_and_jsonl(tricky_run, tmp_path):
    from hfspeech.cli import main as cli
    from hfspeech.inference.outputs import split_labels

    clips = sorted(str(p) for p in (tricky_run.parent / "wav").glob("*.wav"))
    for name in ("out.csv", "out.jsonl"):
        assert cli(["predict", str(tricky_run), *clips, "--top_k", str(len(TRICKY)), "--output",
                    str(tmp_path / name)]) == 0
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(clips) and all(sorted(split_labels(row["labels"])) == sorted(TRICKY) for row in rows)
    jsonl = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert all(sorted(p["label"] for p in row["predictions"]) == sorted(TRICKY) for row in jsonl)
    assert cli(["predict", str(tricky_run), *clips, "--output", str(tmp_path / "out.csv")]) == 0  # resumes
    assert len((tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()) == len(clips) + 1


def test_a_class_named_like_a_summary_row_keeps_its_own_row():
    report = per_class_report([0, 1, 2, 0], [0, 1, 2, 2], ["accuracy", "macro avg", "b"])
    assert report["accuracy"]["support"] == 1 and report["macro avg"]["support"] == 1
    assert report["overall accuracy"] == 0.75 and report["overall macro avg"]["support"] == 4
    assert "accuracy" in per_class_report([0, 1], [0, 1], ["a", "b"])  # other labels: sklearn's keys as ever


def test_plots_show_dollar_signs_as_text_not_tex(tmp_path):
    labels = ["$x^$", "cost $5 and $10", "b"]
    write_evaluation_report(str(tmp_path), [0, 1, 2], [0, 1, 1], labels)
    scores = np.array([[0.9, 0.1, 0.2], [0.2, 0.8, 0.1], [0.1, 0.3, 0.7]])
    write_multilabel_report(str(tmp_path), scores, np.eye(3, dtype=int), labels, [0.5, 0.5, 0.5])
    assert (tmp_path / "test_confusion_matrix.png").is_file() and (tmp_path / "test_per_class_ap.png").is_file()


def test_nfc_and_nfd_spellings_are_one_class(tmp_path):
    rows = write_clips(tmp_path / "wav", [NFC, NFD, "x"])
    assert encoded_names(train_file=str(write_csv(tmp_path / "m.csv", rows))) == [NFC, "x"]
    for name in (NFC, NFD):  # a macOS folder name (NFD) beside one typed (NFC)
        write_clips(tmp_path / "folder" / name, [name])
    assert encoded_names(data_dir=str(tmp_path / "folder")) == [NFC]


def test_data_in_nfc_is_scored_against_a_model_whose_label_is_nfd(tmp_path):
    rows = write_clips(tmp_path / "wav", [NFC, "x"])
    dataset = encode_labels(load_audio_dataset(train_file=str(write_csv(tmp_path / "m.csv", rows))),
                            label_names=["x", NFD])
    assert dataset["train"]["label"][:] == [1, 1, 0, 0]


def test_a_label_with_a_line_break_is_refused_naming_the_file(tmp_path):
    rows = write_clips(tmp_path / "wav", ["a\nb", "c"])
    with pytest.raises(DataError, match=r"c0_0\.wav: the label 'a\\nb' holds a line break"):
        encoded_names(train_file=str(write_csv(tmp_path / "m.csv", rows)))
    with open(tmp_path / "m.jsonl", "w") as f:
        f.writelines(json.dumps({"path": path, "labels": [label.replace("\n", " "), "d\te"]}) + "\n"
                     for path, label in rows)
    with pytest.raises(DataError, match=r"the label 'd\\te' holds a line break or other control character"):
        encoded_names(train_file=str(tmp_path / "m.jsonl"), multi_label=True)


def test_json_numbers_are_labels_as_written(tmp_path):
    rows = write_clips(tmp_path / "wav", ["a", "b", "c", "d"])
    values = [7, "7", 1.50, 1e3]  # written 7, "7", 1.50 (not 1.5), 1e3 (not 1000.0)
    lines = [json.dumps({"path": path, "label": values[int(path.split("c")[-1][0])]}) for path, _ in rows]
    lines = [line.replace("1.5}", "1.50}").replace("1000.0}", "1e3}") for line in lines]
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    assert encoded_names(train_file=str(tmp_path / "m.jsonl")) == ["1.50", "1e3", "7"]


def test_labels_that_differ_only_in_case_are_warned_about(tmp_path, caplog):
    rows = write_clips(tmp_path / "wav", ["Yes", "yes", "no"])
    with caplog.at_level(logging.WARNING, logger="hfspeech.data"):
        assert encoded_names(train_file=str(write_csv(tmp_path / "m.csv", rows))) == ["Yes", "no", "yes"]
    assert "differ only in letter case" in caplog.text and "'Yes' and 'yes'" in caplog.text


def test_datasets_minus_one_no_label_is_one_line_naming_the_split(tmp_path):
    rows = write_clips(tmp_path / "wav", ["a", "b"])
    features = Features({"audio": Audio(decode=False), "label": ClassLabel(names=["a", "b"])})
    paths = [str(tmp_path / path) for path, _ in rows]
    DatasetDict({"train": Dataset.from_dict({"audio": paths, "label": [0, 0, 1, 1]}, features=features),
                 "test": Dataset.from_dict({"audio": paths, "label": [-1] * 4}, features=features)}
                ).save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(DataError, match=r"c0_0\.wav: 4 clip\(s\) have the class id -1 in split 'test' and no label"):
        encoded_names(dataset_name=str(tmp_path / "saved"))


def test_a_folder_named_with_spaces_only_is_an_empty_label(tmp_path):
    write_clips(tmp_path / "folder" / "   ", ["x"])
    write_clips(tmp_path / "folder" / "dog", ["dog"])
    with pytest.raises(DataError, match=r"c0_0\.wav: empty label"):
        encoded_names(data_dir=str(tmp_path / "folder"))


def test_a_multi_label_cell_of_separators_only_is_refused_not_read_as_no_event(tmp_path):
    rows = write_clips(tmp_path / "wav", ["dog;", ";", ""])  # `dog;` is dog; an empty cell is no event
    with pytest.raises(DataError, match=r"c1_0\.wav: label cell ';' holds no label"):
        encoded_names(train_file=str(write_csv(tmp_path / "m.csv", rows)), multi_label=True)
    assert encoded_names(train_file=str(write_csv(tmp_path / "ok.csv", [r for r in rows if r[1] != ";"])),
                         multi_label=True) == ["dog"]


def test_a_timeline_plot_shows_dollar_labels_as_text(tmp_path):
    from conftest import save_random_baseline
    from hfspeech.cli import main as cli

    model = save_random_baseline(tmp_path / "model", "cnn", ["$x^$", "b"], 0.02, conv_channels=[4, 8], n_mels=16)
    clip = tmp_path / write_clips(tmp_path / "wav", ["a"], per_label=1)[0][0]
    assert cli(["predict", str(model), str(clip), "--timeline", str(tmp_path / "timeline")]) == 0
    assert (tmp_path / "timeline" / "c0_0.timeline.png").stat().st_size > 0


def write_metadata_folder(root: Path, split_labels: dict[str, list[str]]) -> Path:
    """datasets' audiofolder layout: `root/<split>/metadata.csv` (file_name, label) beside the clips."""
    for split, labels in split_labels.items():
        rows = write_clips(root / split, labels)
        write_csv(root / split / "metadata.csv", [(Path(path).name, label) for path, label in rows])
        (root / split / "metadata.csv").write_text((root / split / "metadata.csv").read_text().replace(
            "path,label", "file_name,label"))
    return root


def test_metadata_labels_in_split_folders_are_the_labels_not_the_folder_names(tmp_path):
    root = write_metadata_folder(tmp_path / "data", {"train": ["dog", "cat"], "test": ["dog"]})
    dataset = encode_labels(load_audio_dataset(data_dir=str(root)))
    assert sorted(dataset) == ["test", "train"] and dataset["train"].features["label"].names == ["cat", "dog"]
    assert dataset["test"]["label"][:] == [1, 1]


def test_metadata_labels_that_pandas_would_change_are_refused(tmp_path):
    root = write_metadata_folder(tmp_path / "data", {"train": ["01", "1", "NA"]})
    with pytest.raises(DataError, match=r"metadata\.csv: datasets' audiofolder guesses the type of the 'label' "
                                        r"column and reads '01' as 1\.0 .* --path_column_name file_name"):
        load_audio_dataset(data_dir=str(root))
