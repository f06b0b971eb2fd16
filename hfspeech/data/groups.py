"""Group-disjoint evaluation: splits and folds in which no speaker (recording, session...) is on both sides.

A random split of clips puts the same voice in training and test, and the test score then measures how well
the model knows those voices, not how it does on a new one. With a group column (``--group_column speaker``)
the missing splits are carved out of whole groups, ``hfspeech cross-validate`` makes one fold per group, and a
manifest whose given splits share a group gets a warning naming the groups (``data.split_audit``), since its
test numbers flatter.

Groups come from a manifest column (CSV/TSV/JSONL), read again here in the manifest's row order, which is the
order ``data.loading`` keeps; they ride along as a ``group`` column until the splits are made.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from datasets import Dataset, DatasetDict

from hfspeech.data.columns import column_values
from hfspeech.data.labels import written_form
from hfspeech.data.manifests import column_named, read_manifest
from hfspeech.data.splits import in_file_order
from hfspeech.errors import DataError, UsageError

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
    group_column = column_named(path, columns, group_column)  # `Speaker` for `--group_column speaker`
    if group_column not in columns:
        raise DataError(f"{path}: no group column {group_column!r}; available columns: {columns}")
    groups = [_cell_text(row.get(group_column)) for row in rows]
    if "" in groups:
        raise DataError(f"{path}: row {groups.index('') + 1} has an empty {group_column!r} cell")
    return rows, columns, groups


def _cell_text(value) -> str:
    """A group cell as text: a JSONL `"speaker": 0` (or `false`) is the group "0", not an empty cell. Read as a
    label is (`written_form`: composed Unicode), for `Zoë` typed and `Zoë` from a macOS folder name (decomposed)
    were two groups, and that speaker was in one fold's training and test clips."""
    return "" if value is None else written_form(str(value))


def group_disjoint_splits(dataset: DatasetDict, validation_fraction: float = 0.1, test_fraction: float = 0.1,
                          seed: int = 42) -> DatasetDict:
    """Like ``data.splits.make_splits``, but the missing splits take whole groups (about the given share of
    clips each, at least one group); splits the data already has are kept. Groups that leak across the splits
    are warned about by ``data.split_audit``, which records them in the run's data report. As there, rows are
    carved in ``in_file_order``: the same manifest rows listed in another order trained other weights."""
    splits = dict(dataset)
    carved = [(name, fraction) for name, fraction in (("test", test_fraction), ("validation", validation_fraction))
              if name not in splits and fraction > 0]
    train = in_file_order(splits["train"]) if carved else splits["train"]
    for name, fraction in carved:
        share = fraction / max(1e-9, 1.0 - (test_fraction if name == "validation" and "test" not in dataset else 0))
        train, splits[name] = _take_groups(train, share, seed, name)
    splits["train"] = train
    return DatasetDict({name: splits[name] for name in ("train", "validation", "test") if name in splits})


def _take_groups(data: Dataset, fraction: float, seed: int, name: str) -> tuple[Dataset, Dataset]:
    """Groups in a seeded order, each taken while the split stays under about ``fraction`` of the clips; a group
    that would overshoot is passed over (it once became the whole test split: a speaker holding 90% of the
    clips left one clip to train on). At least one group is held, and at least one left to train on."""
    groups = np.asarray(column_values(data, GROUP_COLUMN))
    names, counts = np.unique(groups, return_counts=True)
    if len(names) < 2:
        raise DataError(f"cannot make a group-disjoint {name} split: the training data has only {len(names)} group "
                        f"left ({', '.join(names.tolist())}); give the {name} split as a manifest "
                        f"(--{name}_file), or pass --{name}_split_percentage 0")
    taken, total = [], 0
    for index in np.random.default_rng(seed).permutation(len(names)):
        if len(taken) < len(names) - 1 and total + counts[index] / 2 <= fraction * len(groups):
            taken.append(names[index])
            total += counts[index]
    if not taken:  # every group is bigger than twice the share: the smallest one
        taken = [names[int(np.argmin(counts))]]
    held = np.isin(groups, taken)
    return data.select(np.flatnonzero(~held)), data.select(np.flatnonzero(held))


def leaked_groups(dataset: DatasetDict) -> dict[str, list[str]]:
    """``{"train/test": [groups in both]}`` for every pair of splits that share a group."""
    members = {name: set(column_values(split, GROUP_COLUMN)) for name, split in dataset.items()
               if GROUP_COLUMN in split.column_names}
    names = list(members)
    return {f"{a}/{b}": sorted(members[a] & members[b]) for i, a in enumerate(names) for b in names[i + 1:]
            if members[a] & members[b]}
