"""`hfspeech cross-validate`: leave-one-group-out (or grouped k-fold) cross-validation of the fine-tuning recipe.

    hfspeech cross-validate --train_file all.csv --group_column speaker --output_dir runs/logo --model_type bcresnet

One fold per group (speaker, recording, session): that group is the test split, never seen in training; the
validation split is `--validation_split_percentage` of the remaining clips, drawn across their groups and
stratified by label as `hfspeech train` draws its own (it picks the best epoch, so it shares voices with training;
the test split never does). Each fold is a normal training run in `OUTPUT_DIR/fold-<group>`. Above 20 groups
`--num_folds K` is needed: K folds of whole groups, `OUTPUT_DIR/fold-1` ... (`training.fold_manifests`);
`OUTPUT_DIR/cross_validation.json` has every fold's test metrics and their mean, standard deviation, minimum and
maximum: a score with its spread over unseen groups, not one lucky split; and `pooled`: accuracy and F1 (mAP and F1
multi-label) of all folds' held-out clips together, each scored by the fold model that did not train on it
(`training.cross_validation_pooled`: multi-label folds' class sets differ, and their mean mAP averages over
different labels). It is rewritten after each fold; until every fold has run it says `"complete": false`, names the
folds not run (and the one that failed) and gives no mean (nor pooled scores).
"""

from __future__ import annotations

import copy
import logging
import os
from typing import Optional, Sequence

import numpy as np

from hfspeech.data.groups import read_groups
from hfspeech.data.manifest_cells import refuse_text_not_utf8
from hfspeech.data.dataset_columns import label_column_of
from hfspeech.data.manifests import absolute_manifest_folder, column_named, resolve_listed_path
from hfspeech.errors import DataError, UsageError, first_few
from hfspeech.output_folders import check_output_folder
from hfspeech.training.command_line import process_state_kept, quiet_other_processes
from hfspeech.training.cross_validation_args import parse_cross_validation_args
from hfspeech.training.fold_draws import fold_rows, rows_in_file_order  # (fold_rows: tests import it from here)
from hfspeech.training.fold_manifests import (check_fold_folder_names, check_fold_labels, fold_data_arguments,
                                              held_out_groups, manifest_texts, one_per_group, refuse_redrawn_folds,
                                              row_labels, write_texts)

logger = logging.getLogger("hfspeech.cross_validate")
SUMMARY_FILE = "cross_validation.json"  # the folds' test metrics, beside their fold-<group> folders


def summarise(values: Sequence[float]) -> dict:
    """Mean, standard deviation over the folds (population, ddof=0, as recipes/fsdd/README.md reports it), min
    and max of per-fold scores."""
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std()), "min": float(array.min()),
            "max": float(array.max()), "folds": len(array)}


def write_fold_manifests(*args, **kwargs) -> dict[str, dict[str, str]]:  # `drawn_folds`' manifests alone
    return drawn_folds(*args, **kwargs)[0]


def drawn_folds(manifest: str, group_column: str, output_dir: str, validation_fraction: float, seed: int,
                path_column: str = "path", label_column: Optional[str] = None, label_separator: Optional[str] = None,
                write: bool = True, num_folds: Optional[int] = None) -> tuple[dict, dict[str, list[str]]]:
    """({fold: {"train": csv, "validation": csv, "test": csv}}, {fold: its held-out groups}): the rows split per fold
    (`fold_manifests.held_out_groups`), paths made absolute; no validation manifest for a share of 0. With
    `label_column` (`label_separator`: multi-label) every fold's labels are checked. All checks come before anything
    is written: a fold that cannot train would stop after the earlier ones had. `write=False` (every process but
    the first of its machine): the paths only, the files not rewritten while another process reads them."""
    rows, columns, groups = read_groups(manifest, group_column)
    held_out = held_out_groups(manifest, group_column, groups, num_folds, seed)
    path_column = column_named(manifest, columns, path_column)  # Excel's `Path`, read as train reads it
    if path_column not in columns:
        raise DataError(f"{manifest}: missing column {path_column!r}; available columns: {columns} (name it with "
                        "--path_column_name)")
    refuse_text_not_utf8(manifest, rows, path_column)  # Arrow's and the CSV writer's tracebacks
    if one_per_group(held_out):  # folders named after their groups; dealt folds are numbered
        check_fold_folder_names(manifest, group_column, groups)
    base = absolute_manifest_folder(manifest)  # the rows' files as train and predict find them
    label_column = column_named(manifest, columns, label_column_of(columns, label_column)) if label_column else None
    labels = row_labels(rows, label_column, label_separator) if label_column else None
    folds = fold_rows(groups, validation_fraction, seed, rows_in_file_order(rows, path_column, label_column, base),
                      labels, held_out)
    if labels is not None:
        check_fold_labels(manifest, group_column, folds, labels, held_out)
    texts = manifest_texts(rows, columns, folds, output_dir,
                           lambda row: {**row, path_column: resolve_listed_path(row.get(path_column), base)},
                           None if one_per_group(held_out) else held_out)
    if write:
        refuse_redrawn_folds(texts, output_dir)  # before anything is written: the earlier run stays as it was
        write_texts(unwritten(texts))
    return {fold: {name: path for name, (path, _) in manifests.items()} for fold, manifests in texts.items()}, held_out


def unwritten(texts: dict) -> dict:
    """`texts` less the manifests already on disk as drawn: on a folder the machines share, the first process of
    each writes the folds (`run_cross_validation`), and one that another machine wrote is not rewritten (truncated)
    while that machine checks it (`refuse_redrawn_folds`)."""
    def on_disk(path: str, text: str) -> bool:
        try:
            with open(path, newline="", encoding="utf-8") as f:  # as written: the CSV writer's \r\n kept
                return f.read() == text
        except (OSError, ValueError):
            return False

    return {fold: {name: (path, text) for name, (path, text) in manifests.items() if not on_disk(path, text)}
            for fold, manifests in texts.items()}


def run_training(*args, **kwargs) -> dict:  # `training.run`'s, imported when a fold trains (tests replace it here)
    from hfspeech.training.run import run_training as train_fold  # seconds: not for `--help` or a mistyped flag

    return train_fold(*args, **kwargs)


def check_model_flags_first(model_args) -> None:
    """The model flags checked as `hfspeech train` checks them before it reads its data (`run.setup_training`: a
    pretrained model's rate against `--sampling_rate`, `--model_type` and `--config_overrides`), here before the fold
    manifests are drawn: a bad `--config_overrides` was refused by the first fold, its manifests left in OUTPUT_DIR."""
    from hfspeech.training.model_setup import check_model_flags, pretrained_feature_extractor  # (torch: not for --help)

    pretrained_feature_extractor(model_args)
    check_model_flags(model_args)


def folds_of_this_process(model_args, data_args, training_args, num_folds: Optional[int]) -> tuple[dict, dict]:
    """The output folder and model flags checked, and the folds drawn (their manifests written by each machine's
    first process: machine 1 with a folder of its own stopped, "manifest file not found"; on a folder the machines
    share, one written as drawn is left as it is, `unwritten`): the steps that may fail on one machine alone (its
    folder, its copy of the model or manifest), main process first, its barriers run whether they fail or not, for
    `distributed.agreed` to take (one machine failing left the others gloo's traceback)."""
    root, everything = training_args.output_dir, training_args.overwrite_output_dir  # all its files written over
    with training_args.main_process_first(desc="fold manifests"):
        check_output_folder(root, "--output_dir", earlier="an earlier cross-validation",  # a name no model loads from
                            ours=lambda name: everything or name.startswith("fold-") or name == SUMMARY_FILE,
                            remedy="or pass --overwrite_output_dir to write over them", model=True)
        check_model_flags_first(model_args)  # before anything is written into `root`
        return drawn_folds(data_args.train_file, data_args.group_column, root,
                           data_args.validation_split_percentage / 100, training_args.seed, data_args.path_column_name,
                           data_args.label_column_name, data_args.label_separator if model_args.multi_label else None,
                           write=training_args.local_process_index == 0, num_folds=num_folds)


def run_cross_validation(model_args, data_args, training_args, num_folds: Optional[int] = None) -> dict:
    from hfspeech.training.cross_validation_pooled import pooled_or_failure, score_fold
    from hfspeech.training.distributed import agreed  # (torch: not for --help)
    from hfspeech.training.run_log import log_to_stderr

    log_to_stderr()  # as each fold's run sets it, before the first: its "fold 1: 1 of N" line was dropped (UX)
    quiet_other_processes(training_args)  # several processes log from the main one
    if not (data_args.group_column and data_args.train_file) or data_args.validation_file or data_args.test_file:
        raise UsageError("hfspeech cross-validate needs one manifest (--train_file, all the data) and --group_column")
    root, first = training_args.output_dir, training_args.process_index == 0  # one writer of the summary
    folds, groups_of = agreed(lambda: folds_of_this_process(model_args, data_args, training_args, num_folds))
    listed = None if one_per_group(groups_of) else groups_of  # dealt folds: cross_validation.json names their groups
    results, held_out, pooled_failure = {}, {}, None
    write_summary(root, results, list(folds), write=first, held_out=listed)  # an earlier run's never beside these
    for group, files in folds.items():
        fold_data, fold_training = fold_data_arguments(data_args, files), copy.deepcopy(training_args)
        fold_training.output_dir = os.path.join(root, f"fold-{group}")
        logger.info("fold %s: %d of %d%s", group, len(results) + 1, len(folds),
                    f" (holding out {data_args.group_column}: {first_few(groups_of[group])})" if listed else "")
        try:
            results[group] = run_training(model_args, fold_data, fold_training)
        except BaseException:  # an error or Ctrl-C: the folds done so far stay on record, with no mean over them
            write_summary(root, results, list(folds), failed=group, write=first, held_out=listed)
            raise
        if first and pooled_failure is None:  # the first process's fold model (the others return no test scores)
            pooled_failure = score_fold(held_out, group, fold_training.output_dir, fold_data, model_args,
                                        training_args.per_device_eval_batch_size)
        summary = write_summary(root, results, list(folds), write=first, held_out=listed,  # the last is the final one
                                pooled=pooled_or_failure(held_out, len(folds), pooled_failure))
    logger.info("%s test scores over %d folds: %s; pooled out of fold: %s",
                f"grouped {len(folds)}-fold" if listed else f"leave-one-{data_args.group_column}-out", len(results),
                {k: v for k, v in summary.items() if k.startswith("test_")},
                {k: v for k, v in (summary.get("pooled") or {}).items() if isinstance(v, float)})
    return summary


def summarise_folds(results: dict[str, dict], groups: Sequence[str], failed: Optional[str] = None,
                    pooled: Optional[dict] = None, held_out: Optional[dict[str, list[str]]] = None) -> dict:
    """Each fold's test metrics (and its test and skipped clip counts); once every fold has run, the spread
    (`summarise`) of every score all folds report: accuracy and F1 single-label, mAP, F1 and subset accuracy
    multi-label (which has no accuracy: its summary stopped on an empty list after every fold had trained).
    Unfinished, it names the folds that did not run and the one that failed, and gives no mean: a mean over
    the folds that happened to finish is not the cross-validated score. `pooled`: the out-of-fold metrics of all
    folds' held-out clips together (`training.cross_validation_pooled`), beside the means, once complete.
    `held_out`: {fold: its groups} of dealt folds (`--num_folds`), as `held_out_groups`, from before any fold ran."""
    folds = {group: {k: v for k, v in metrics.items() if k.startswith("test_") or k in ("num_test_clips",
                                                                                        "num_skipped_files")}
             for group, metrics in results.items()}
    summary: dict = {"folds": folds, "complete": len(results) == len(groups)}
    if held_out is not None:
        summary["held_out_groups"] = held_out
    if not summary["complete"]:
        summary["not_run"] = [group for group in groups if group not in results]
        if failed is not None:
            summary["failed"] = failed
        return summary
    scores = [name for name, value in next(iter(folds.values())).items() if name.startswith("test_")
              and isinstance(value, (int, float)) and not isinstance(value, bool) and "num_" not in name]
    for name in scores:
        if all(isinstance(fold.get(name), (int, float)) for fold in folds.values()):
            summary[name] = summarise([fold[name] for fold in folds.values()])
    if pooled is not None:  # {"pooled": None, "pooled_not_scored": why} where re-scoring a fold failed
        summary.update(pooled if "pooled" in pooled else {"pooled": pooled})
    return summary


def write_summary(root: str, results: dict[str, dict], groups: Sequence[str], failed: Optional[str] = None,
                  write: bool = True, pooled: Optional[dict] = None, held_out: Optional[dict] = None) -> dict:
    """`summarise_folds`, written to `cross_validation.json` by the first process only: the others' metrics carry
    no test scores (the first computes them), and with every process writing, the file was whoever wrote last's."""
    from hfspeech.evaluation.report import write_metrics_json

    summary = summarise_folds(results, groups, failed, pooled, held_out)
    if write:
        write_metrics_json(os.path.join(root, SUMMARY_FILE), summary)
    return summary


def main(argv: Optional[Sequence[str]] = None) -> dict:
    with process_state_kept():  # as `run.main`; the first fold's log set-up holds to the summary
        folds_args, *recipe_args = parse_cross_validation_args(argv)
        return run_cross_validation(*recipe_args, num_folds=folds_args.num_folds)
