"""A class too small to divide no longer makes the whole split random: the rarest strata are pooled and the
rest stay stratified (a multi-label audit: a 2-clip label among 6 made the validation split random, and a label in
40% of the clips had no validation clip, its threshold left untuned)."""

from __future__ import annotations

import logging
from collections import Counter

from datasets import ClassLabel, Dataset, Sequence


def test_one_clip_of_a_class_pools_it_with_the_next_rarest_and_keeps_the_others_stratified(caplog):
    from hfspeech.data.splits import make_splits

    labels = [c for c in range(5) for _ in range(20)] + [5]  # five classes of 20 clips, one of a single clip
    data = Dataset.from_dict({"label": labels}).cast_column("label", ClassLabel(names=list("abcdef")))
    with caplog.at_level(logging.WARNING, logger="hfspeech.data.splits"):
        splits = make_splits({"train": data}, 0.1, 0.1, seed=0)
    for name in ("test", "validation"):
        shares = Counter(splits[name]["label"])
        assert sorted(shares[c] for c in range(1, 5)) == [2, 2, 2, 2], (name, shares)  # 10% of 20, every class
    assert "2 rarest of 6 classes" in caplog.text and "at random" not in caplog.text


def test_more_label_groups_than_held_out_clips_are_pooled_in_words_about_labels(caplog):
    from hfspeech.data.splits import make_splits

    rows = [[0], [1], [2], [3], [4], [5]] * 9 + [[6], [6, 0], []]  # 60 clips: 7 labels and a group without any
    data = Dataset.from_dict({"label": rows}).cast_column("label", Sequence(ClassLabel(names=list("abcdefg"))))
    with caplog.at_level(logging.WARNING, logger="hfspeech.data.splits"):
        splits = make_splits({"train": data}, 0.1, 0.1, seed=0)
    for name in ("test", "validation"):
        present = {label for labels in splits[name]["label"] for label in labels}
        assert len(splits[name]) == 6 and len(present) >= 5, (name, splits[name]["label"])
    assert "number of classes =" not in caplog.text and "at random" not in caplog.text


def test_three_clips_still_split_at_random_as_datasets_does():
    from hfspeech.data.splits import make_splits

    data = Dataset.from_dict({"label": [0, 1, 2], "row": [0, 1, 2]}).cast_column("label", ClassLabel(names=list("abc")))
    ours = make_splits({"train": data}, 0.0, 0.34, seed=5)
    assert ours["test"]["row"][:] == data.train_test_split(test_size=0.34, seed=5)["test"]["row"][:]
