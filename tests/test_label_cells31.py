"""Multi-label cells of a CSV manifest as users write them: a list of strings (JSON, or the Python repr that
pandas' `to_csv` writes for a list column) is read as that list, the separator hint names the separator most
cells hold and never one that splits a list's brackets, and errors name the manifest and data row."""

from __future__ import annotations

import csv
import json
import re

import pytest

from hfspeech.data.labels import encode_labels, label_names_of, parse_label_list
from hfspeech.data.loading import load_audio_dataset
from hfspeech.errors import DataError


def write_manifest(folder, cells: list, name: str = "labels.csv") -> str:
    """A manifest listing one (empty: labels are not decoded) audio file per cell; .jsonl cells are JSON values."""
    for i in range(len(cells)):
        (folder / f"c{i}.wav").write_bytes(b"")
    path = folder / name
    with open(path, "w", newline="", encoding="utf-8") as f:
        if name.endswith(".jsonl"):
            f.writelines(json.dumps({"path": f"c{i}.wav", "labels": cell}) + "\n" for i, cell in enumerate(cells))
        else:
            writer = csv.writer(f)
            writer.writerow(["path", "labels"])
            writer.writerows([f"c{i}.wav", cell] for i, cell in enumerate(cells))
    return str(path)


def encoded(path: str, **options):
    return encode_labels(load_audio_dataset(train_file=path), multi_label=True, **options)["train"]


def clip_labels(split) -> list[list[str]]:
    names = label_names_of(split)
    return [[names[i] for i in clip] for clip in split["label"]]


def test_list_cells_are_read_as_lists_of_labels(tmp_path):
    """`["beep", "engine"]` got the hint "set --label_separator ','", which trained `["beep"` and `[]` as classes;
    a label holding a comma (`glass, breaking`) stays one label; `[]` is a clip with no event, as in JSONL."""
    cells = [json.dumps(["beep", "glass, breaking"]), str(["engine", "beep"]), "[]", '["siren"]']
    split = encoded(write_manifest(tmp_path, cells))
    assert label_names_of(split) == ["beep", "engine", "glass, breaking", "siren"]
    assert clip_labels(split) == [["beep", "glass, breaking"], ["engine", "beep"], [], ["siren"]]


def test_cross_validation_reads_a_list_cell_as_training_does():
    assert parse_label_list('["glass, breaking", "a;b"]', ";") == ["glass, breaking", "a;b"]
    assert parse_label_list("[noise];speech", ";") == ["[noise]", "speech"]  # not a list: split as before


def test_the_hint_names_the_separator_most_cells_hold(tmp_path):
    """`|` cells where one label is `glass, breaking` got "set --label_separator ','" (the first one found)."""
    path = write_manifest(tmp_path, ["beep|engine", "glass, breaking|siren", "siren|beep", "engine"])
    with pytest.raises(DataError, match=r"set --label_separator '\|' \(3 of 4 cells hold it\)"):
        encoded(path)
    assert label_names_of(encoded(path, separator="|")) == ["beep", "engine", "glass, breaking", "siren"]


def test_a_cell_that_only_looks_like_a_list_is_not_split_at_its_commas(tmp_path):
    """`[beep, engine]` (no quotes) got "set --label_separator ','": `[beep` and `engine]` as classes."""
    path = write_manifest(tmp_path, ["[beep, engine]", "[siren]", "[beep, siren]"])
    with pytest.raises(DataError) as error:
        encoded(path)
    assert "--label_separator" not in str(error.value) and "looks like a list" in str(error.value)


def test_errors_about_a_label_cell_name_the_manifest_and_its_data_row(tmp_path):
    path = write_manifest(tmp_path, ["beep,hum", "siren,beep", "click,hum"])
    source = {"train_file": path}
    with pytest.raises(DataError, match=rf"^{re.escape(path)}: row 1: label cell 'beep,hum' holds ','"):
        encoded(path, source=source)
    with pytest.raises(DataError, match=rf"^{re.escape(path)}: row 3: unknown label 'click'"):
        encoded(path, source=source, separator=",", label_names=["beep", "hum", "siren"])
    blank = write_manifest(tmp_path, ["beep", "beep;hum", ";"], name="blank.csv")
    with pytest.raises(DataError, match=rf"^{re.escape(blank)}: row 3: label cell ';' holds no label"):
        encoded(blank, source={"train_file": blank})


@pytest.mark.parametrize("cell, name", [('[" "]', "labels.csv"), ([" "], "labels.jsonl")])
def test_a_list_of_no_label_is_refused_without_speaking_of_a_separator(tmp_path, cell, name):
    """A CSV `[" "]` became the class `[" "]`; a JSONL one's error said "labels are split at ';'"."""
    path = write_manifest(tmp_path, [["beep"] if name.endswith("jsonl") else "beep", cell], name=name)
    with pytest.raises(DataError, match="holds a list of no label") as error:
        encoded(path, source={"train_file": path})
    assert "split at" not in str(error.value) and str(error.value).startswith(f"{path}: row 2: ")


def test_cross_validation_folds_of_a_jsonl_manifest_with_label_lists_train(tmp_path):
    """A fold's CSV holds a JSONL list as Python's repr (`['a', 'glass, breaking']`): fold training stopped with
    "set --label_separator ','" (and following it trained `['a'` as a class)."""
    from hfspeech.training.cross_validation import write_fold_manifests

    clips = [(["a", "glass, breaking"], "g1"), (["a"], "g1"), (["glass, breaking"], "g2"), (["a"], "g2"),
             (["a", "glass, breaking"], "g3"), (["glass, breaking"], "g3")]
    lines = []
    for i, (labels, group) in enumerate(clips):
        (tmp_path / f"c{i}.wav").write_bytes(b"")
        lines.append(json.dumps({"path": f"c{i}.wav", "labels": labels, "group": group}) + "\n")
    (tmp_path / "m.jsonl").write_text("".join(lines))
    folds = write_fold_manifests(str(tmp_path / "m.jsonl"), "group", str(tmp_path / "cv"), 0.0, 0,
                                 label_column="labels", label_separator=";")
    split = encoded(folds["g1"]["train"])
    assert sorted(map(sorted, clip_labels(split))) == sorted(sorted(labels) for labels, group in clips if group != "g1")


@pytest.mark.parametrize("cells", [["[dog, siren]", "[siren]", "cat"], ["[dog;siren]", "dog;cat"],
                                   ["dog;siren", "[dog, siren]", "cat"], ['["dog" "siren"]', "cat"]])
def test_a_cell_that_only_looks_like_a_list_is_refused_even_beside_split_cells(tmp_path, cells):
    """The refusal ran only when no cell held the separator: beside `dog;cat`, `[dog;siren]` was split into the
    classes `[dog` and `siren]`; `["dog" "siren"]` (a comma left out) was the one label 'dogsiren' (review)."""
    with pytest.raises(DataError, match="looks like a list but is not a list of quoted strings"):
        encoded(write_manifest(tmp_path, cells), separator="," if cells[0] == "[dog, siren]" else ";")
