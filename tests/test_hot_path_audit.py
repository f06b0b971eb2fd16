"""Checks added to hot paths cost what they must, not a step per row: label text is normalised and scanned for
control characters once per distinct label (200,000 rows of 35 labels took twice as long when every row's was),
and a bad label is still named by the first file that has it."""

from __future__ import annotations

import unicodedata

import pytest
from datasets import Dataset, DatasetDict

import hfspeech.data.labels as labels_module
from hfspeech.data.labels import encode_labels
from hfspeech.errors import DataError

ROWS = 3000


def strings_dataset(labels: list) -> DatasetDict:
    return DatasetDict(train=Dataset.from_dict({"audio": [{"path": f"clip_{i}.wav", "bytes": None}
                                                          for i in range(len(labels))], "label": labels}))


class CountingUnicodedata:
    """`unicodedata` as labels.py sees it, counting the per-string calls (each still does its real work)."""

    def __init__(self):
        self.calls = 0

    def normalize(self, form, text):
        self.calls += 1
        return unicodedata.normalize(form, text)

    def category(self, char):
        self.calls += 1
        return unicodedata.category(char)


@pytest.mark.parametrize("multi_label", [False, True])
def test_label_text_is_checked_once_per_distinct_label_not_per_row(monkeypatch, multi_label):
    counting = CountingUnicodedata()
    monkeypatch.setattr(labels_module, "unicodedata", counting)
    cells = [("dog;cat" if multi_label else "dog") if i % 2 else "café" for i in range(ROWS)]
    encoded = encode_labels(strings_dataset(cells), multi_label=multi_label, separator=";")
    names = encoded["train"].features["label"]
    names = (names.feature if multi_label else names).names
    assert sorted(names) == sorted(["café", "dog"] + (["cat"] if multi_label else []))
    assert counting.calls < 100, f"{counting.calls} unicodedata calls for {ROWS} rows of 2-3 labels"


@pytest.mark.parametrize("multi_label", [False, True])
def test_a_control_character_is_named_by_the_first_row_that_has_it(multi_label):
    cells = ["dog"] * ROWS
    cells[1234], cells[2000] = "a\tb", "c\nd"
    with pytest.raises(DataError, match=r"clip_1234\.wav: the label 'a\\tb' holds a line break"):
        encode_labels(strings_dataset(cells), multi_label=multi_label, separator=";")
