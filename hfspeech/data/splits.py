"""Train/validation/test splits, stratified by label, for data that comes without them."""

from __future__ import annotations

import logging
import math
from collections import Counter
from functools import partial
from typing import Callable, Optional

import numpy as np
from datasets import Audio, ClassLabel, Dataset, DatasetDict
from datasets.utils.stratify import stratified_shuffle_split_generate_indices

from hfspeech.data.columns import column_values

logger = logging.getLogger(__name__)

STRATUM_COLUMN = "_stratum"
NO_LABEL = "<no label>"


def make_splits(
    dataset: DatasetDict, validation_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 42,
    said: Optional[list[str]] = None,
) -> DatasetDict:
    """Add the missing `validation` and `test` splits by carving them out of `train`.

    Splits the data already has are kept as they are (a published test set stays the test set).
    Stratification keeps every class's share the same in each split; where some class is too small to be
    divided, the rarest classes are pooled into one stratum, and only where that leaves one stratum is the split a
    plain random one (seeded); either is warned.

    Multi-label clips (a list of labels each) are stratified by their *rarest* label (counted in the
    data being split; clips without a label form a stratum of their own): every class then lands in
    each split in about its share, rare classes included -- a simple stand-in for iterative
    stratification.

    Clips that are files (a manifest's rows, an audio folder's files) are split in the order of their paths
    (`in_file_order`), so the same rows give the same splits in whatever order a manifest lists them.

    `said`: where the warnings go instead of the log, for a caller that splits many times (cross-validate's folds:
    the same line was logged once per fold, up to 100 times, naming none) and says them once itself.
    """
    if "train" not in dataset:
        raise ValueError(f"the data has no 'train' split (splits: {list(dataset)})")
    splits = dict(dataset)
    carved = [name for name, share in (("test", test_fraction), ("validation", validation_fraction))
              if name not in splits and share > 0]
    train = in_file_order(splits["train"]) if carved else splits["train"]
    say = said.append if said is not None else partial(logger.warning, "%s")
    if "test" in carved:
        train, splits["test"] = _split(train, test_fraction, seed, "test", say)
    if "validation" in carved:
        # The fraction is of the whole data, so rescale it to what is left after the test split.
        share = validation_fraction / max(1e-9, 1.0 - (test_fraction if "test" not in dataset else 0.0))
        train, splits["validation"] = _split(train, min(share, 0.5), seed, "validation", say)
    splits["train"] = train
    return DatasetDict({name: splits[name] for name in ("train", "validation", "test") if name in splits})


def _split(data: Dataset, fraction: float, seed: int, name: str, say: Callable[[str], None]) -> tuple[Dataset, Dataset]:
    multi_label = not isinstance(data.features["label"], ClassLabel)
    stratum = STRATUM_COLUMN if multi_label else "label"
    if multi_label:
        data = _with_rarest_label_stratum(data)
    strata = np.asarray(column_values(data, stratum))
    try:
        parts = _stratified_split(data, fraction, seed, strata)
    except ValueError as error:
        parts = _split_with_rare_strata_pooled(data, fraction, seed, strata, name, str(error), say, multi_label)
    if multi_label:
        return parts["train"].remove_columns(stratum), parts["test"].remove_columns(stratum)
    return parts["train"], parts["test"]


def _split_with_rare_strata_pooled(data: Dataset, fraction: float, seed: int, strata: np.ndarray, name: str,
                                   problem: str, say: Callable[[str], None], multi_label: bool) -> dict[str, Dataset]:
    """A stratified split with the rarest strata pooled into one, where some stratum cannot be divided (one clip) or
    there are more strata than clips to hold out; at random only where pooling cannot help. Before, one class of 2
    clips among 6 made the whole split random, and a label in 40% of the clips then had no validation clip. A
    single-label class the pooled split held out whole keeps a clip for training (a multi-label clip's rarest label
    held out says nothing of its other labels)."""
    n_test = math.ceil(fraction * len(data))
    values, counts = np.unique(strata, return_counts=True)
    order = np.argsort(counts, kind="stable")  # rarest first
    if 0 < fraction < 1 and n_test < len(data) and (pooled := _strata_to_pool(counts[order], n_test, len(data))):
        merged = np.where(np.isin(strata, values[order[:pooled]]), -1, strata)
        say(f"the {name} split: {_problem_words(problem)}, so the {pooled} rarest of {len(values)} classes (or label "
            "groups) are stratified as one")
        train, test = _stratified_indices(len(data), fraction, seed, merged)
        if not multi_label:
            labels = np.asarray(column_values(data, "label"))
            train, test = _last_clips_kept_for_training(train, test, labels, name, say)
        return {"train": data.select(train), "test": data.select(test)}
    say(f"cannot stratify the {name} split ({_problem_words(problem)}); splitting at random instead")
    return data.train_test_split(test_size=fraction, seed=seed)


def _last_clips_kept_for_training(train: np.ndarray, test: np.ndarray, labels: np.ndarray, name: str,
                                  say: Callable[[str], None]) -> tuple[np.ndarray, np.ndarray]:
    """The (train, test) row indices with one clip of each class the held-out part took whole moved back to train,
    as long as a clip stays held out: a pooled draw could hold out all of a rare class's clips (8 of 1,000 speakers
    of 3 clips had no training clip; the model could never answer them). The held-out split is then that many clips
    short of its share. Rows of the one data set (`select`), so the splits still share its table: decoded once."""
    trained = set(labels[train].tolist())
    first_held_out: dict = {}
    for position, label in enumerate(labels[test].tolist()):
        if label not in trained:
            first_held_out.setdefault(label, position)
    moved = sorted(first_held_out.values())[:len(test) - 1]
    if not moved:
        return train, test
    say(f"the {name} split would have held every clip of {len(moved)} rare class(es); one clip of "
        "each is kept for training instead")
    return np.concatenate([train, test[moved]]), np.delete(test, moved)


def _strata_to_pool(rarest_first: np.ndarray, n_test: int, n_clips: int) -> int:
    """How many of the rarest strata (their sizes, rarest first) to pool so that every stratum holds 2 clips and
    there are no more strata than clips on either side; 0 where only one stratum would be left. From the sizes
    alone: trying each count over all clips took 29 s for 3,500 strata of 200,000 clips."""
    pooled_sizes = np.cumsum(rarest_first)
    for pooled in range(2, len(rarest_first)):  # all of them pooled: one stratum, a random split
        left = len(rarest_first) - pooled + 1
        smallest = min(pooled_sizes[pooled - 1], rarest_first[pooled])
        if smallest >= 2 and left <= min(n_test, n_clips - n_test):
            return pooled
    return 0


def _problem_words(problem: str) -> str:
    """datasets' (scikit-learn's) wording in hfspeech's: its "number of classes" counted strata, not labels."""
    return problem.replace("the number of classes", "the number of strata (classes, or label groups)")


def _stratified_split(data: Dataset, fraction: float, seed: int, strata: np.ndarray) -> dict[str, Dataset]:
    """`data.train_test_split(test_size=fraction, seed=seed, stratify_by_column=...)` on `strata` (one value per
    clip): the same indices, but the column read at once. datasets 4 reads it row by row (`np.asarray` of a
    `Column`), which took 19 s of a 20,000-clip run's preparation, and 1 ms a clip on a loaded machine."""
    train, test = _stratified_indices(len(data), fraction, seed, strata)
    return {"train": data.select(train), "test": data.select(test)}


def _stratified_indices(size: int, fraction: float, seed: int, strata: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (train, test) row indices of `_stratified_split`."""
    n_test = math.ceil(fraction * size)
    if not 0 < fraction < 1 or n_test >= size:
        raise ValueError(f"cannot hold out {fraction:.0%} of {size} clips")
    try:
        return next(stratified_shuffle_split_generate_indices(strata, size - n_test, n_test,
                                                              rng=np.random.default_rng(seed)))
    except ValueError as error:
        raise ValueError("the least populated class has only 1 clip" if str(error) == "Minimum class count error"
                         else str(error)) from error


def _with_rarest_label_stratum(data: Dataset) -> Dataset:
    """A `ClassLabel` column holding each clip's rarest label (or `NO_LABEL`), to stratify on."""
    label_lists = column_values(data, "label")
    counts = Counter(label for labels in label_lists for label in labels)
    keys = [str(min(labels, key=lambda label: (counts[label], label))) if labels else NO_LABEL
            for labels in label_lists]
    strata = ClassLabel(names=sorted(set(keys)))
    return data.add_column(STRATUM_COLUMN, [strata.str2int(key) for key in keys]).cast_column(STRATUM_COLUMN, strata)


def in_file_order(data: Dataset) -> Dataset:
    """`data` sorted by audio path, then label, where its clips are files (an undecoded `Audio` column without
    embedded bytes: manifests, audio folders); left as it is when already in that order (an audio folder is
    listed sorted, so its splits are those it always had) and for audio held in the data itself (a Hub
    dataset's rows have the one order it is published in). A manifest written from a directory listing or by a
    script lists its rows in any order: the carved splits followed it, the same rows giving other splits."""
    import pyarrow.compute as pc

    feature = data.features.get("audio")
    if not isinstance(feature, Audio) or feature.decode or "label" not in data.column_names or len(data) < 2:
        return data
    audio = data.data.column("audio")
    not_a_file = pc.or_(pc.is_null(audio), pc.is_valid(pc.struct_field(audio, "bytes")))  # missing, or bytes held
    if pc.any(_of_selected_rows(not_a_file, data)).as_py():
        return data
    keys = [(clip["path"] or "", str(label)) for clip, label in zip(column_values(data, "audio"),
                                                                     column_values(data, "label"))]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return data if order == list(range(len(keys))) else data.select(order)


def _of_selected_rows(values, data: Dataset):
    """`values` (one per row of `data`'s Arrow table) for the rows `data` holds: `Dataset.data` is the whole table,
    whatever a `select` / `filter` / split kept, so a view of clips that are files was left in its order for rows
    it does not hold. A take of a boolean per row, not of the audio (whose bytes a take would copy)."""
    indices = data._indices  # datasets' indices mapping of a view (None: every row, in table order)
    return values if indices is None else values.take(indices.column(0))
