"""Group-disjoint evaluation: splits and folds in which no speaker (recording, session...) is on both sides.

A random split of clips puts the same voice in training and test, and the test score then measures how well
the model knows those voices, not how it does on a new one. With a group column (``--group_column speaker``)
the missing splits are carved out of whole groups, ``leave_one_group_out`` makes one fold per group, and a
manifest whose given splits share a group gets a warning naming the groups, since its test numbers flatter.

Groups come from a manifest column (CSV/TSV/JSONL), read again here in the manifest's row order, which is the
order ``data.loading`` keeps; they ride along as a ``group`` column until the splits are made.
"""

from __future__ import annotations

import logging
from typing import Iterator, Optional

import numpy as np
from datasets import Dataset, DatasetDict

from hfspeech.data.manifests import read_manifest
from hfspeech.errors import DataError, UsageError

logger = logging.getLogger(__name__)

GROUP_COLUMN = "group"


def attach_groups(dataset: DatasetDict, source: dict[str, Optional[str]], group_column: str) -> DatasetDict:
    """Each split with a ``group`` column read from its manifest's ``group_column``; ``source`` holds the
    manifests as ``{"train_file": path, ...}`` (``DataArguments.source()``)."""
    files = {name: source.get(f"{name}_file") for name in dataset}
    if not all(files.values()):
        raise UsageError("--group_column needs manifests (--train_file/--validation_file/--test_file)")
    return DatasetDict({split_name: split.add_column(GROUP_COLUMN, read_groups(files[split_name], group_column)[2])
                        for split_name, split in dataset.items()})


def read_groups(path: str, group_column: str) -> tuple[list[dict], list[str], list[str]]:
    """(rows, columns, each row's group) of a manifest; a missing column or an empty cell is a `DataError`."""
    rows, columns = read_manifest(path)
    if group_column not in columns:
        raise DataError(f"{path}: no group column {group_column!r}; available columns: {columns}")
    groups = [str(row.get(group_column) or "").strip() for row in rows]
    if "" in groups:
        raise DataError(f"{path}: row {groups.index('') + 2} has an empty {group_column!r} cell")
    return rows, columns, groups


def group_disjoint_splits(dataset: DatasetDict, validation_fraction: float = 0.1, test_fraction: float = 0.1,
                          seed: int = 42) -> DatasetDict:
    """Like ``data.splits.make_splits``, but the missing splits take whole groups (about the given share of
    clips each, at least one group); splits the data already has are kept. Warns when groups leak."""
    splits = dict(dataset)
    train = splits["train"]
    for name, fraction in (("test", test_fraction), ("validation", validation_fraction)):
        if name in splits or fraction <= 0:
            continue
        share = fraction / max(1e-9, 1.0 - (test_fraction if name == "validation" and "test" not in dataset else 0))
        train, splits[name] = _take_groups(train, share, seed, name)
    splits["train"] = train
    result = DatasetDict({name: splits[name] for name in ("train", "validation", "test") if name in splits})
    warn_group_leakage(result)
    return result


def _take_groups(data: Dataset, fraction: float, seed: int, name: str) -> tuple[Dataset, Dataset]:
    groups = np.asarray(data[GROUP_COLUMN])
    names, counts = np.unique(groups, return_counts=True)
    if len(names) < 2:
        raise DataError(f"cannot make a group-disjoint {name} split: the training data has only {len(names)} group")
    order = np.random.default_rng(seed).permutation(len(names))
    taken, total = [], 0
    for index in order[:-1]:  # leave at least one group to train on
        if taken and total + counts[index] / 2 > fraction * len(groups):
            break
        taken.append(names[index])
        total += counts[index]
    held = np.isin(groups, taken)
    return data.select(np.flatnonzero(~held)), data.select(np.flatnonzero(held))


def leaked_groups(dataset: DatasetDict) -> dict[str, list[str]]:
    """``{"train/test": [groups in both]}`` for every pair of splits that share a group."""
    members = {name: set(split[GROUP_COLUMN]) for name, split in dataset.items() if GROUP_COLUMN in split.column_names}
    names = list(members)
    return {f"{a}/{b}": sorted(members[a] & members[b]) for i, a in enumerate(names) for b in names[i + 1:]
            if members[a] & members[b]}


def warn_group_leakage(dataset: DatasetDict) -> dict[str, list[str]]:
    """Log a warning naming the groups found in more than one split; returns them (empty when disjoint)."""
    leaks = leaked_groups(dataset)
    for pair, groups in leaks.items():
        shown = ", ".join(groups[:5]) + (f" and {len(groups) - 5} more" if len(groups) > 5 else "")
        logger.warning("groups leak across the %s splits (%d: %s): scores on them are not for unseen groups",
                       pair, len(groups), shown)
    return leaks


def leave_one_group_out(data: Dataset) -> Iterator[tuple[str, Dataset, Dataset]]:
    """``(group, rest, that group)`` for each group in sorted order: one cross-validation fold per group."""
    groups = np.asarray(data[GROUP_COLUMN])
    for group in sorted(set(groups.tolist())):
        held = groups == group
        yield group, data.select(np.flatnonzero(~held)), data.select(np.flatnonzero(held))
