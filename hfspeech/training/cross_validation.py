"""`hfspeech cross-validate`: leave-one-group-out cross-validation of the fine-tuning recipe.

    hfspeech cross-validate --train_file all.csv --group_column speaker --output_dir runs/logo --model_type bcresnet

One fold per group (speaker, recording, session): that group is the test split, never seen in training; the
validation split is `--validation_split_percentage` of each remaining group's clips (it picks the best epoch,
so it may share voices with training; the test split never does). Each fold is a normal training run in
`OUTPUT_DIR/fold-<group>`; `OUTPUT_DIR/cross_validation.json` has every fold's test metrics and their mean,
standard deviation, minimum and maximum: a score with its spread over unseen groups, not one lucky split.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from hfspeech.data.groups import GROUP_COLUMN, leave_one_group_out, read_groups
from hfspeech.data.loading import resolve_listed_path
from hfspeech.errors import DataError, UsageError
from hfspeech.output_folders import check_output_folder
from hfspeech.training.command_line import parse_args
from hfspeech.training.run import run_training

logger = logging.getLogger("hfspeech.cross_validate")
SUMMARY_FILE = "cross_validation.json"  # the folds' test metrics, beside their fold-<group> folders


def summarise(values: Sequence[float]) -> dict:
    """Mean, standard deviation over the folds (population, ddof=0, as recipes/fsdd/README.md reports it), min
    and max of per-fold scores."""
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std())
    return {"mean": float(array.mean()), "std": std, "min": float(array.min()), "max": float(array.max()),
            "folds": len(array)}


def write_fold_manifests(manifest: str, group_column: str, output_dir: str, validation_fraction: float,
                         seed: int, path_column: str = "path") -> dict[str, dict[str, str]]:
    """``{group: {"train": csv, "validation": csv, "test": csv}}``: the manifest's rows split per fold, paths
    made absolute so the fold manifests can live anywhere."""
    from datasets import Dataset

    rows, columns, groups = read_groups(manifest, group_column)
    if len(set(groups)) < 2:
        raise DataError(f"{manifest}: leave-one-group-out needs at least 2 groups in column {group_column!r}, "
                        f"found {len(set(groups))}")
    if path_column not in columns:
        raise DataError(f"{manifest}: missing column {path_column!r}; available columns: {columns} (name it with "
                        "--path_column_name)")
    base = Path(manifest).resolve().parent
    table = Dataset.from_dict({GROUP_COLUMN: groups, "row": list(range(len(rows)))})
    rng = np.random.default_rng(seed)
    folds = {}
    for group, rest, held in leave_one_group_out(table):
        order = rng.permutation(len(rest))
        validation = set(np.asarray(rest["row"])[order[: int(round(validation_fraction * len(rest)))]].tolist())
        parts = {"train": [r for r in rest["row"] if r not in validation], "validation": sorted(validation),
                 "test": list(held["row"])}
        folder = os.path.join(output_dir, f"fold-{group}", "manifests")
        os.makedirs(folder, exist_ok=True)
        folds[group] = {}
        for name, indices in parts.items():
            path = folds[group][name] = os.path.join(folder, f"{name}.csv")
            with open(path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=columns)
                writer.writeheader()
                for i in indices:
                    writer.writerow({**rows[i], path_column: resolve_listed_path(rows[i].get(path_column), base)})
    return folds


def run_cross_validation(model_args, data_args, training_args) -> dict:
    if not (data_args.group_column and data_args.train_file) or data_args.validation_file or data_args.test_file:
        raise UsageError("hfspeech cross-validate needs one manifest (--train_file, all the data) and --group_column")
    root = training_args.output_dir
    if not training_args.overwrite_output_dir:
        check_output_folder(root, "--output_dir", ours=lambda name: name.startswith("fold-") or name == SUMMARY_FILE,
                            earlier="an earlier cross-validation",
                            remedy="or pass --overwrite_output_dir to write over them")
    folds = write_fold_manifests(data_args.train_file, data_args.group_column, root,
                                 data_args.validation_split_percentage / 100, training_args.seed,
                                 data_args.path_column_name)
    results = {}
    for group, files in folds.items():
        fold_data, fold_training = copy.deepcopy(data_args), copy.deepcopy(training_args)
        fold_data.train_file, fold_data.validation_file, fold_data.test_file = (
            files["train"], files["validation"], files["test"])
        fold_training.output_dir = os.path.join(root, f"fold-{group}")
        logger.info("fold %s: %d of %d", group, len(results) + 1, len(folds))
        results[group] = run_training(model_args, fold_data, fold_training)
    summary = {"folds": {g: {k: v for k, v in m.items() if k.startswith("test_")} for g, m in results.items()},
               "test_accuracy": summarise([m["test_accuracy"] for m in results.values() if "test_accuracy" in m])}
    with open(os.path.join(root, SUMMARY_FILE), "w") as f:
        json.dump(summary, f, indent=2)
    logger.info("leave-one-%s-out test accuracy: %s", data_args.group_column, summary["test_accuracy"])
    return summary


def main(argv: Optional[Sequence[str]] = None) -> dict:
    return run_cross_validation(*parse_args(argv))
