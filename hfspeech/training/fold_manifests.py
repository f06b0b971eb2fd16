"""cross-validate's folds: which groups each holds out, and its manifests, written only where they do not redraw
the folds of an earlier run.

One fold per group by default (leave-one-group-out, `OUTPUT_DIR/fold-<group>`), refused above `MAX_UNASKED_FOLDS`
groups unless `--num_folds` says how many: 500 speakers started 500 trainings without a word. `--num_folds K` deals
the groups into K folds of about equal clip counts (`deal_groups`), `OUTPUT_DIR/fold-1` ... `fold-K`, each listing
its groups in `manifests/held_out_groups.txt`. Groups are listed in their natural order (`natural_order`: speaker
`2` before `10`), the folds run in it. Each fold's manifests (train, validation, test) are drawn from the
one manifest and written into `OUTPUT_DIR/fold-<name>/manifests`. A run of the same command resumes the folds
already trained. When the draw changed in between (an hfspeech that draws otherwise: session 33 stratified the
folds' validation clips, they were drawn at random), rewriting the manifests mixed the draws: a finished fold kept
its model of the old draw beside its new validation.csv, an unfinished one resumed on the new, and
`cross_validation.json` said complete. Such a run is refused before anything is written (the earlier summary and
manifests stay as they were), as is a group that cannot name a fold folder (`check_fold_folder_names`) and a label
one fold would not train on (`check_fold_labels`). Each fold trains on its manifests as parts of the one manifest
(`FoldDataArguments`): the manifest's clips are decoded once, and every fold reads them from that cache.
"""

from __future__ import annotations

import copy
import csv
import io
import os
import re
from collections import Counter
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from hfspeech.data.labels import parse_label_list
from hfspeech.errors import DataError, UsageError, first_few
from hfspeech.path_names import caseless, name_bytes, not_portable, shown_name, unusable_name
from hfspeech.training.arguments import DataArguments

# What a fold's training leaves in its folder (`training.checkpoints`): the mark of a fold trained on its manifests.
TRAINED_MARKS = ("config.json", "run_inputs.json", "trainer_state.json")
NAME_MAX = 255  # bytes in one file or folder name (Linux, macOS; Windows counts 255 UTF-16 units)
MAX_UNASKED_FOLDS = 20  # groups leave-one-group-out trains without --num_folds: one model each
GROUPS_FILE = "held_out_groups.txt"  # beside a k-fold fold's manifests: its groups, one a line


def held_out_groups(manifest: str, group_column: str, groups: Sequence[str], num_folds: Optional[int],
                    seed: int) -> dict[str, list[str]]:
    """{fold name: the groups it holds out}, from each row's group: one fold per group, named after it
    (leave-one-group-out, in `natural_order`), unless `num_folds` is fewer than the groups (`deal_groups`, folds
    named 1 to K). Refused, before anything is written, above `MAX_UNASKED_FOLDS` groups without `num_folds`,
    and a `num_folds` the groups cannot fill."""
    sizes = Counter(groups)
    if len(sizes) < 2:
        raise DataError(f"{manifest}: leave-one-group-out needs at least 2 groups in column {group_column!r}, "
                        f"found {len(sizes)}")
    if num_folds is None and len(sizes) > MAX_UNASKED_FOLDS:
        raise UsageError(f"{manifest}: {len(sizes)} groups in column {group_column!r}: leave-one-group-out would "
                         f"train {len(sizes)} models, one per group; give --num_folds 5 (or 10) to deal the groups "
                         f"into that many folds, or --num_folds {len(sizes)} to train one per group")
    if num_folds is not None and not 2 <= num_folds <= len(sizes):
        raise UsageError(f"--num_folds {num_folds}: give 2 to {len(sizes)}, the groups in column {group_column!r} "
                         f"of {manifest} ({len(sizes)}: one fold per group, leave-one-group-out)")
    if num_folds is None or num_folds == len(sizes):
        return {group: [group] for group in sorted(sizes, key=natural_order)}
    return deal_groups(sizes, num_folds, seed)


def natural_order(name: str) -> tuple:
    """The sort key of a group name as people number them: numbers by value, the text between them as text
    (`2` before `10`, `spk2` before `spk10`; sorted as strings, speakers 1, 10, 13, 2), then the name itself,
    so that `02` and `2` keep one order. Numbers and text alternate from the start, so no two compared are
    of different types."""
    parts = re.split(r"([0-9]+)", name)
    return tuple(int(part) if odd % 2 else part for odd, part in enumerate(parts)), name


def one_per_group(held_out: dict[str, list[str]]) -> bool:
    """Whether `held_out_groups` made one fold per group, named after it (leave-one-group-out)."""
    return all(groups == [fold] for fold, groups in held_out.items())


def deal_groups(sizes: dict[str, int], num_folds: int, seed: int) -> dict[str, list[str]]:
    """{"1": groups, ..., "K": groups} (each in `natural_order`) of about equal clip counts: the largest group first,
    each into the fold with the fewest clips so far (the first such), groups of one size in an order drawn with `seed`.
    sklearn's `GroupKFold` balances the folds (shuffle=False) or draws them with a seed (shuffle=True: equal
    numbers of groups, whatever their clips), not both. Every fold gets a group: the first K go to empty ones."""
    names = sorted(sizes)  # the draw's order, not a listing: as before, so an earlier run's folds are dealt again
    drawn = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    folds: list[list[str]] = [[] for _ in range(num_folds)]
    clips = [0] * num_folds
    for group in sorted(drawn, key=lambda name: -sizes[name]):  # a stable sort: ties stay in the drawn order
        lightest = clips.index(min(clips))
        folds[lightest].append(group)
        clips[lightest] += sizes[group]
    return {str(number): sorted(held, key=natural_order) for number, held in enumerate(folds, start=1)}


def check_fold_folder_names(manifest: str, group_column: str, groups: Sequence[str]) -> None:
    """Each group names a folder `fold-<group>` of its own: one with / or \\ left OUTPUT_DIR ("a/../../x"), and
    two that differ only in case ("Alice", "alice") or composition (`Zoë` as one code point or as `e` + accent)
    are one folder on macOS and Windows, where the second fold's manifests and run replaced the first's. A name
    longer than a folder's name may be (`NAME_MAX`), or one the OS cannot be given under an ASCII locale, stopped
    on an OSError after the folds before it were written; so did one Windows cannot name (`a:b`, `CON`, a trailing
    dot: `path_names.not_portable`), refused on every system as the case twins are. Each is a one-line `DataError`
    naming the row."""
    first_of: dict[str, str] = {}
    for row, group in enumerate(groups, start=1):
        if "/" in group or "\\" in group:
            raise DataError(f"{manifest}: row {row}: {group_column} {group!r} cannot name a fold folder "
                            f"(fold-<group>): a group name has no / or \\ in it")
        if problem := unusable_name(group):
            raise DataError(f"{manifest}: row {row}: {group_column} {shown_name(group)} cannot name a fold folder "
                            f"(fold-<group>): {problem}")
        if len(name_bytes(f"fold-{group}")) > NAME_MAX:
            raise DataError(f"{manifest}: row {row}: {group_column} {group[:20]!r}... cannot name a fold folder "
                            f"(fold-<group>): {len(name_bytes(group))} bytes, over the {NAME_MAX - len('fold-')} a "
                            "folder's name leaves it; shorten the group names")
        if problem := not_portable(f"fold-{group}"):  # `a:b` failed on Windows, `x.` and `x` were one folder there
            raise DataError(f"{manifest}: row {row}: {group_column} {group!r} cannot name a fold folder "
                            f"(fold-<group>) on every system: {problem}; rename it, or deal the groups into numbered "
                            "folds (--num_folds K)")
        earlier = first_of.setdefault(caseless(group), group)  # NFD: macOS names
        if earlier != group:
            raise DataError(f"{manifest}: row {row}: {group_column} {group!r} and {earlier!r} differ only in case "
                            "(or Unicode composition); their fold folders (fold-<group>) would be one on macOS and "
                            "Windows: rename one")


def manifest_texts(rows: list[dict], columns: list[str], folds: dict, output_dir: str, rewrite,
                   held_out: Optional[dict[str, list[str]]] = None) -> dict:
    """``{fold: {name: (path, text)}}``: each fold's manifests as CSV text, `rewrite(row)` the row written (its
    path made absolute); no manifest where a part has no rows (a validation share of 0). With `held_out` (folds
    of several groups, `deal_groups`), also each fold's `GROUPS_FILE`."""
    texts = {}
    for fold, parts in folds.items():
        folder = os.path.join(output_dir, f"fold-{fold}", "manifests")
        texts[fold] = {}
        for name, indices in parts.items():
            if not indices:
                continue
            buffer = io.StringIO(newline="")
            writer = csv.DictWriter(buffer, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rewrite(rows[i]) for i in indices)
            texts[fold][name] = (os.path.join(folder, f"{name}.csv"), buffer.getvalue())
        if held_out is not None:
            texts[fold]["held_out_groups"] = (os.path.join(folder, GROUPS_FILE), "".join(f"{group}\n" for group in
                                                                                      held_out[fold]))
    return texts


def refuse_redrawn_folds(texts: dict, output_dir: str) -> None:
    """A fold that trained on manifests other than those drawn now: one line naming it (see the module)."""
    for group, manifests in texts.items():
        fold = Path(output_dir) / f"fold-{group}"
        if not (any((fold / mark).exists() for mark in TRAINED_MARKS) or any(fold.glob("checkpoint-*"))):
            continue
        for name, (path, text) in manifests.items():
            earlier = _read(path)
            if earlier not in (None, text) and not (name == "held_out_groups" and _same_lines(earlier, text)):
                raise UsageError(f"{path}: fold {group} trained on other {name} clips than the folds drawn now "
                                 "(another --seed or --num_folds, or an earlier hfspeech, which drew the folds' "
                                 "validation clips at random; they are stratified by label now): resuming would mix "
                                 f"two draws; give a new --output_dir, or delete {output_dir} to run every fold anew")


def row_labels(rows: list[dict], label_column: str, separator: Optional[str]) -> list[set]:
    """Each row's labels, read as training reads them (`data.labels.parse_label_list`; `label_column` as the
    manifest spells it, `data.dataset_columns.label_column_of`): its cell, or with `separator` the cell's parts (a JSONL
    list as it is)."""
    labels = []
    for row in rows:
        value = row.get(label_column)
        parts = parse_label_list(value, separator) if separator or isinstance(value, (list, tuple)) else [value]
        labels.append({str(part).strip() for part in parts if part is not None and str(part).strip()})
    return labels


def check_fold_labels(manifest: str, group_column: str, folds: dict, labels: list[set],
                      held_out: dict[str, list[str]]) -> None:
    """A label whose clips are all in the groups one fold holds out is missing from that fold's training rows; the
    fold then stopped on an unknown label in its test split after every fold before it had trained. Validation is
    checked first: a label also in the test split whose other clips were all drawn for validation is not "all
    its clips in that group"."""
    for fold, parts in folds.items():
        known = set().union(*(labels[i] for i in parts["train"]))
        groups = first_few([repr(group) for group in held_out[fold]])
        for name in ("validation", "test"):
            missing = sorted(set().union(*(labels[i] for i in parts[name])) - known)
            if missing:
                named = "" if held_out[fold] == [fold] else f" (fold-{fold})"
                where = (f"all its clips are in {group_column} {groups}" if name == "test" else
                         f"its clips outside {groups} were all drawn for validation")
                remedy = ("every label needs clips in two groups or more" if not named else "the groups that hold "
                          "it all fell into this fold: give another --seed or --num_folds (or more groups holding it)")
                raise DataError(f"{manifest}: label {missing[0]!r} has no training clip in the fold that holds out "
                                f"{group_column} {groups}{named} ({where}); {remedy}")


@dataclass
class FoldDataArguments(DataArguments):
    """A fold's data flags: its manifests, read as parts of the one manifest (`DataSpec.parts_of_one_table`), whose
    clips every fold then reads from one decoded cache; decoded fold by fold, K folds were K decodes and K cached
    copies of the same audio. Not with `--streaming`, whose training split is never decoded."""

    def spec(self):
        return replace(super().spec(), parts_of_one_table=not self.streaming)


def fold_data_arguments(data_args: DataArguments, files: dict[str, str]) -> FoldDataArguments:
    """`data_args` for the fold whose manifests are `files` ({"train": csv, "validation": csv, "test": csv}); a fold
    without a validation manifest (`--validation_split_percentage 0`) carves none out of train either."""
    fold = FoldDataArguments(**{flag.name: copy.deepcopy(getattr(data_args, flag.name)) for flag in fields(data_args)
                                if flag.init})
    fold.train_file, fold.validation_file, fold.test_file = files["train"], files.get("validation"), files["test"]
    if fold.validation_file is None:
        fold.validation_split_percentage = 0
    return fold


def write_texts(texts: dict) -> None:
    for manifests in texts.values():
        for path, text in manifests.values():
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", newline="", encoding="utf-8") as f:
                f.write(text)


def _same_lines(earlier: str, now: str) -> bool:
    """Whether two `GROUPS_FILE` texts list the same groups: one written before groups were listed in
    `natural_order` (1, 10, 2) holds the same fold."""
    return sorted(earlier.splitlines()) == sorted(now.splitlines())


def _read(path: str):
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return f.read()
    except (OSError, ValueError):
        return None
