"""cross-validate's fold manifests, written only where they do not redraw the folds of an earlier run.

Each fold's manifests (train, validation, test) are drawn from the one manifest and written into
`OUTPUT_DIR/fold-<group>/manifests`. A run of the same command resumes the folds already trained. When the draw
changed in between (an hfspeech that draws otherwise: session 33 stratified the folds' validation clips, they were
drawn at random), rewriting the manifests mixed the draws: a finished fold kept its model of the old draw beside
its new validation.csv, an unfinished one resumed on the new, and `cross_validation.json` said complete. Such a
run is refused before anything is written (the earlier summary and manifests stay as they were), as is a group that
cannot name a fold folder (`check_fold_folder_names`).
"""

from __future__ import annotations

import csv
import io
import os
import unicodedata
from pathlib import Path
from typing import Sequence

from hfspeech.errors import DataError, UsageError
from hfspeech.path_names import name_bytes, shown_name, unusable_name

# What a fold's training leaves in its folder (`training.checkpoints`): the mark of a fold trained on its manifests.
TRAINED_MARKS = ("config.json", "run_inputs.json", "trainer_state.json")
NAME_MAX = 255  # bytes in one file or folder name (Linux, macOS; Windows counts 255 UTF-16 units)


def check_fold_folder_names(manifest: str, group_column: str, groups: Sequence[str]) -> None:
    """Each group names a folder `fold-<group>` of its own: one with / or \\ left OUTPUT_DIR ("a/../../x"), and
    two that differ only in case ("Alice", "alice") or composition (`Zoë` as one code point or as `e` + accent)
    are one folder on macOS and Windows, where the second fold's manifests and run replaced the first's. A name
    longer than a folder's name may be (`NAME_MAX`), or one the OS cannot be given under an ASCII locale, stopped
    on an OSError after the folds before it were written. Each is a one-line `DataError` naming the row."""
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
        earlier = first_of.setdefault(unicodedata.normalize("NFC", group.casefold()), group)  # NFD: macOS names
        if earlier != group:
            raise DataError(f"{manifest}: row {row}: {group_column} {group!r} and {earlier!r} differ only in case "
                            "(or Unicode composition); their fold folders (fold-<group>) would be one on macOS and "
                            "Windows: rename one")


def manifest_texts(rows: list[dict], columns: list[str], folds: dict, output_dir: str, rewrite) -> dict:
    """``{group: {name: (path, text)}}``: each fold's manifests as CSV text, `rewrite(row)` the row written (its
    path made absolute); no manifest where a part has no rows (a validation share of 0)."""
    texts = {}
    for group, parts in folds.items():
        folder = os.path.join(output_dir, f"fold-{group}", "manifests")
        texts[group] = {}
        for name, indices in parts.items():
            if not indices:
                continue
            buffer = io.StringIO(newline="")
            writer = csv.DictWriter(buffer, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rewrite(rows[i]) for i in indices)
            texts[group][name] = (os.path.join(folder, f"{name}.csv"), buffer.getvalue())
    return texts


def refuse_redrawn_folds(texts: dict, output_dir: str) -> None:
    """A fold that trained on manifests other than those drawn now: one line naming it (see the module)."""
    for group, manifests in texts.items():
        fold = Path(output_dir) / f"fold-{group}"
        if not (any((fold / mark).exists() for mark in TRAINED_MARKS) or any(fold.glob("checkpoint-*"))):
            continue
        for name, (path, text) in manifests.items():
            if _read(path) not in (None, text):
                raise UsageError(f"{path}: fold {group} trained on other {name} clips than the folds drawn now (an "
                                 "earlier hfspeech drew the folds' validation clips at random; they are stratified by "
                                 f"label now): resuming would mix two draws; give a new --output_dir, or delete "
                                 f"{output_dir} to run every fold anew")


def write_texts(texts: dict) -> None:
    for manifests in texts.values():
        for path, text in manifests.values():
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", newline="", encoding="utf-8") as f:
                f.write(text)


def _read(path: str):
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return f.read()
    except (OSError, ValueError):
        return None
