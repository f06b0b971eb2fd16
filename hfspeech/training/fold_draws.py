"""How each cross-validation fold's rows are drawn (`cross_validation.drawn_folds`): the rows in `hfspeech train`'s file
order, the held-out groups as the test split, and the validation rows drawn from the rest, stratified by label as
`hfspeech train` carves its own. Plain numpy and small tables of row numbers: no audio is read here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa
from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features, List, Value

from hfspeech.data.columns import column_values
from hfspeech.data.manifests import resolve_listed_path
from hfspeech.data.splits import in_file_order, make_splits
from hfspeech.errors import first_few
from hfspeech.training.fold_manifests import natural_order

logger = logging.getLogger("hfspeech.cross_validate")


def rows_in_file_order(rows: list[dict], path_column: str, label_column: Optional[str], base: Path) -> list[int]:
    """The manifest's row indices in `data.splits.in_file_order` (audio path, then label): the order a carved
    split is drawn in, so the same rows give the same folds however the manifest lists them (the validation
    rows followed the row order)."""
    table = Dataset.from_dict({
        "audio": [resolve_listed_path(row.get(path_column), base) for row in rows],
        "label": ["" if label_column is None else str(row.get(label_column)) for row in rows],
        "row": list(range(len(rows)))}).cast_column("audio", Audio(decode=False))
    return column_values(in_file_order(table), "row")


def fold_rows(groups: Sequence[str], validation_fraction: float, seed: int,
              row_order: Optional[Sequence[int]] = None, labels: Optional[Sequence[set]] = None,
              held_out: Optional[dict[str, Sequence[str]]] = None) -> dict[str, dict[str, list[int]]]:
    """``{fold: {"train": rows, "validation": rows, "test": rows}}`` (row indices, each list in `row_order`: the
    rows' `rows_in_file_order`, else as listed), one fold per group in `natural_order`, or with `held_out` ({fold: its
    groups}) one per fold, the rows of its groups its test split. With `labels` (each row's set)
    the validation rows are drawn as `hfspeech train` draws its own (`_stratified_validation`); without, at random.
    A share above 0 takes at least one row and leaves one to train on: rounded to none, its fold's empty validation
    manifest stopped the run; a share of 0 takes none, and the fold trains without validation, as `hfspeech train`
    does. Plain numpy masks over the rows: one `Dataset.select` per fold and side took 22 s for 40k rows in 100
    groups (a stratified draw makes one small table per fold, of row numbers and labels only)."""
    row_order = np.asarray(list(range(len(groups)) if row_order is None else row_order), dtype=np.int64)
    names, group_codes = np.unique(np.asarray([str(groups[i]) for i in row_order.tolist()], dtype=object),
                                   return_inverse=True)
    rng, label_column = np.random.default_rng(seed), None if labels is None else _label_column(labels)
    folds, said, code_of = {}, {}, {group: code for code, group in enumerate(names.tolist())}
    one_each = {group: [group] for group in sorted(names.tolist(), key=natural_order)}  # the folds' (draws') order
    for group, fold_groups in (held_out or one_each).items():
        held = np.isin(group_codes, [code_of[name] for name in fold_groups])
        rest = row_order[~held]
        if label_column is not None and validation_fraction > 0 and len(rest) > 1:
            lines: list[str] = []
            drawn = np.isin(rest, _stratified_validation(rest, label_column, validation_fraction, seed, lines))
            for line in lines:
                said.setdefault(line, []).append(group)
        else:
            drawn = _plain_validation(len(rest), validation_fraction, rng)
        folds[group] = {"train": rest[~drawn].tolist(), "validation": rest[drawn].tolist(),
                        "test": row_order[held].tolist()}
    for line, warned in said.items():  # each once: logged by each fold's draw, one line came up to 100 times
        logger.warning("%s (%d of %d folds): %s", first_few([f"fold-{g}" for g in warned]), len(warned), len(folds),
                       line)
    return folds


def _plain_validation(rows: int, validation_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A random mask of `validation_fraction` of `rows` (at least one, one left over), for folds without labels."""
    order, size = rng.permutation(rows), int(round(validation_fraction * rows))
    size = min(max(1, size), rows - 1) if validation_fraction > 0 else size
    drawn = np.zeros(rows, dtype=bool)
    drawn[order[:size]] = True
    return drawn


def _stratified_validation(rest: np.ndarray, labels: tuple, validation_fraction: float, seed: int,
                           said: list[str]) -> list[int]:
    """The rows of `rest` drawn for validation by `data.splits.make_splits`, train's own carve: stratified by label
    (multi-label by each clip's rarest label), the rarest classes pooled where one cannot be divided. A plain random
    draw left the rare classes out of most folds' validation (10:4:2:1 emotions, 10 clips: the rarest class absent
    in 3 of 4 folds), which then picked the best checkpoint on the other classes. `labels`: `_label_column`'s;
    `said`: where the draw's warnings go (`fold_rows` says each once, naming its folds)."""
    feature, values = labels
    features = Features({"row": Value("int64"), "label": feature})  # Arrow arrays: from_dict encodes row by row
    fold_values = values[rest] if isinstance(values, np.ndarray) else [values[i] for i in rest.tolist()]
    table = Dataset(pa.Table.from_arrays([pa.array(rest), pa.array(fold_values, type=feature.pa_type)],
                                         schema=features.arrow_schema))
    carved = make_splits(DatasetDict(train=table), validation_fraction=validation_fraction, test_fraction=0, seed=seed,
                         said=said)
    return column_values(carved["validation"], "row")


def _label_column(labels: Sequence[set]) -> tuple:
    """(feature, values) of every row's labels as `data.labels` encodes them for train, made once for all folds: one
    label each, a `ClassLabel` and an array of ids; otherwise lists of labels, which `make_splits` stratifies by
    their rarest."""
    if all(len(clip) == 1 for clip in labels):
        ids = {name: i for i, name in enumerate(sorted({label for clip in labels for label in clip}))}
        return ClassLabel(names=list(ids)), np.asarray([ids[next(iter(clip))] for clip in labels], dtype=np.int64)
    return List(Value("string")), [sorted(clip) for clip in labels]
