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


def test_a_classlabel_column_is_not_taken_for_integer_labels():
    """A ClassLabel's dtype is int64 too: its names were then ordered with int() ('bird': ValueError; review)."""
    from datasets import Audio, ClassLabel

    named = Dataset.from_dict({"audio": ["a.wav"] * 2, "label": [0, 1]}).cast_column(
        "label", ClassLabel(names=["cat", "dog"])).cast_column("audio", Audio(decode=False))
    text = Dataset.from_dict({"audio": ["b.wav"], "label": ["bird"]}).cast_column("audio", Audio(decode=False))
    encoded = encode_labels(DatasetDict({"x": named, "y": text}))
    assert encoded["x"].features["label"].names == ["cat", "dog", "bird"]
