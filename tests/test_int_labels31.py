"""Integer labels without declared names are class ids in number order (a datasets-user audit: labels 1, 2, 10, 11
became ids 0-3 as '1', '10', '11', '2'); text labels stay in text order."""

from __future__ import annotations

from datasets import Dataset, DatasetDict

from hfspeech.data.labels import encode_labels


def names(labels, multi_label=False):
    split = Dataset.from_dict({"audio": ["a.wav"] * len(labels), "label": labels})
    encoded = encode_labels(DatasetDict({"train": split}), multi_label=multi_label)["train"].features["label"]
    return (encoded.feature if multi_label else encoded).names


def test_integer_labels_are_ordered_as_numbers():
    assert names([11, 2, 10, 1]) == ["1", "2", "10", "11"]
    assert names([[11], [2, 10], [1], []], multi_label=True) == ["1", "2", "10", "11"]


def test_text_labels_that_look_like_numbers_keep_text_order():
    assert names(["11", "2", "10", "1"]) == ["1", "10", "11", "2"]
