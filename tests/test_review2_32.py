"""Review-2 mends of session 32's data commits: a role's split read by another role's slice (B2), a tie between
`,` and `;` (B3), a trailing unnamed header cell with values (B5), typography taken for mojibake and a folder's
or dataset's class name told to "mend that cell" (B7)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from hfspeech.data.file_names import mojibake_intended, spreadsheet_damage
from hfspeech.data.labels import encode_labels
from hfspeech.data.manifests import read_manifest
from hfspeech.data.split_names import choose_splits, split_notes
from hfspeech.errors import DataError


def written(tmp_path: Path, text: str) -> str:
    path = tmp_path / "m.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_role_whose_split_another_flags_slice_reads_is_said_to_be_cut_out_of_it():
    """`--train_split_name train+validation --eval_split_name validation`: the eval flag equals its default, so it
    was dropped, and validation was carved out of train+validation without a word."""
    given = {"train": "train+validation"}
    chosen = choose_splits(["train", "validation", "test"], given, "ds")
    notes = split_notes(chosen, given, {"train": 8, "validation": 2, "test": 2}, "ds")
    assert chosen == {"train": "train+validation", "test": "test"}
    said = [note for note in notes if "--train_split_name train+validation" in note]
    assert len(said) == 1 and "--eval_split_name validation" in said[0] and "validation_split_percentage" in said[0]
    given = {"train": "train+dev"}
    notes = split_notes(choose_splits(["train", "dev"], given, "ds"), given, {"train": 8, "dev": 2}, "ds")
    said = [note for note in notes if "--train_split_name train+dev" in note]
    assert len(said) == 1 and "split 'dev'" in said[0] and "--eval_split_name dev" not in said[0]


@pytest.mark.parametrize("text, columns", [
    ("path;labels (dog, cat ...)\na.wav;dog,siren\nb.wav;cat,dog\n", ["path", "labels (dog, cat ...)"]),
    ("path;labels,tags\na.wav;dog,siren\nb.wav;cat,dog\n", ["path", "labels,tags"]),
])
def test_a_semicolon_file_that_splits_as_evenly_at_commas_reads_at_semicolons(tmp_path, text, columns):
    rows, read = read_manifest(written(tmp_path, text))
    assert read == columns and rows[0] == dict(zip(columns, ["a.wav", "dog,siren"]))


def test_a_comma_file_whose_labels_hold_semicolons_still_reads_at_commas(tmp_path):
    rows, columns = read_manifest(written(tmp_path, "path,labels;tags\na.wav,dog;siren\nb.wav,cat;dog\n"))
    assert columns == ["path", "labels;tags"] and rows[1] == {"path": "b.wav", "labels;tags": "cat;dog"}


def test_a_trailing_unnamed_column_with_values_is_read_and_an_empty_one_dropped(tmp_path):
    rows, columns = read_manifest(written(tmp_path, "path,label,\na.wav,dog,note1\nb.wav,cat,\n"))
    assert columns == ["path", "label", ""] and rows[0][""] == "note1" and rows[1][""] == ""
    rows, columns = read_manifest(written(tmp_path, "path,label,,\na.wav,dog,,\nb.wav,cat,,\n"))
    assert columns == ["path", "label"] and rows[1] == {"path": "b.wav", "label": "cat"}


def mangled(word: str) -> str:
    """`word`'s UTF-8 read as Windows-1252 (Latin-1 for the bytes it leaves undefined), as Excel does."""
    return "".join(bytes([byte]).decode("cp1252", errors="ignore") or chr(byte) for byte in word.encode("utf-8"))


def test_typography_is_not_taken_for_mojibake_and_mangled_words_still_are():
    for text in ["CAFÉ\xa0!", "Ü–", "É’", "Ø°C", "MÜ–ZE"]:
        assert (text, spreadsheet_damage(text)) == (text, None)
    words = ["café", "voilà", "naïve", "Łódź", "москва", "Да", "العربية", "עברית", "日本語", "señor’s", "Ελληνικά",
             "🙂", "người", "București", "ə", "ɛ", unicodedata.normalize("NFD", "café")]
    assert {word: mojibake_intended(mangled(word)) for word in words} == {word: word for word in words}


def class_labelled(*names: str) -> DatasetDict:
    features = Features({"audio": {"path": Value("string")}, "label": ClassLabel(names=list(names))})
    audio = [{"path": "clips/up/a.wav"}, {"path": f"clips/{names[1]}/b.wav"}]
    return DatasetDict({"train": Dataset.from_dict({"audio": audio, "label": [0, 1]}, features=features)})


@pytest.mark.parametrize("source, mend", [({"data_dir": "clips"}, "rename it to 'café'"),
                                          ({"dataset_name": "me/sounds"}, "in the dataset's class names")])
def test_a_mangled_folder_or_class_name_is_not_called_a_cell(source, mend):
    with pytest.raises(DataError) as error:
        encode_labels(class_labelled("up", "cafÃ©"), source=source)
    assert mend in str(error.value) and "cell" not in str(error.value) and "Excel" not in str(error.value)


def test_a_spreadsheet_error_value_as_a_folder_name_says_to_rename_the_folder():
    with pytest.raises(DataError, match=r"the label '#N/A' is a spreadsheet's error value .*rename that folder$"):
        encode_labels(class_labelled("up", "#N/A"), source={"data_dir": "clips"})


def test_a_mangled_string_label_of_a_hub_dataset_is_not_called_a_spreadsheet_cell():
    """Review 4: a dataset's string label column (not a ClassLabel) with `cafÃ©` was told to mend a spreadsheet cell."""
    from datasets import Dataset, DatasetDict

    from hfspeech.data.labels import encode_labels
    from hfspeech.errors import DataError

    data = DatasetDict(train=Dataset.from_dict({"audio": [{"path": "a.wav"}, {"path": "b.wav"}],
                                                "label": ["cafÃ©", "up"]}))
    with pytest.raises(DataError, match="in the dataset's label column: mend it there to 'café'") as error:
        encode_labels(data, source={"dataset_name": "user/ds"})
    assert "Excel" not in str(error.value) and "cell" not in str(error.value)
