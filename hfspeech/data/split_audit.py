"""Checks that the numbers a run reports are for clips, speakers and classes the model never trained on.

A test score is only honest when its clips are not training clips. Manifests make it easy to break that
without noticing: the same file listed in `--train_file` and `--test_file`, a copy of a file under another
name, a row pasted twice (which a random split can then put on both sides), a speaker in both splits. And a
split can be degenerate: a class with no clip in the test split (its accuracy is over the other classes
only, and macro-F1 leaves the absent class out unless the model predicts it), or in train (the model never
sees it).

`audit_splits` runs on the final splits of `data.labelled` (after splitting and `--max_*_samples`), logs
one warning per finding and records it in `DataReport.warnings`, so that it reaches `data_report.json`,
`metrics.json` (`data_warnings`) and the model card. The same file listed with two labels in one split is
not a leak but a contradiction: a `DataError`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter, defaultdict
from typing import Optional

from datasets import Dataset, DatasetDict

from hfspeech.data.clip_digests import audio_sources, folder_and_name
from hfspeech.data.columns import column_values
from hfspeech.data.groups import leaked_groups
from hfspeech.data.prepare import DataReport
from hfspeech.errors import DataError, first_few

logger = logging.getLogger("hfspeech.data")


def audit_repeats(dataset: DatasetDict, report: Optional[DataReport] = None) -> list[str]:
    """Files listed more than once in a split, as loaded (before a split carved from train can put the two
    listings on both sides): warned and recorded; with two labels, a `DataError`."""
    return _record(_repeated_files(dataset, {name: _clip_keys(split) for name, split in dataset.items()}), report)


def audit_splits(dataset: DatasetDict, report: Optional[DataReport] = None) -> list[str]:
    """Warnings about files (or their contents, or groups) shared by the final splits, and classes missing
    from a split; each one logged and added to `report.warnings`. Returns them."""
    keys = {name: _clip_keys(split) for name, split in dataset.items()}
    warnings = [*_shared_files(keys), *_shared_contents(keys), *_group_leaks(dataset), *_missing_classes(dataset)]
    return _record(warnings, report)


def _record(warnings: list[str], report: Optional[DataReport]) -> list[str]:
    for warning in warnings:
        logger.warning("data: %s", warning)
    if report is not None:
        report.warnings.extend(warnings)
    return warnings


def _clip_keys(split: Dataset) -> list[str]:
    """Each clip's identity: the real path of its file (links and `./` resolved), or a digest of its bytes."""
    return [os.path.realpath(path) if path and data is None else "bytes:" + hashlib.sha1(data or b"").hexdigest()
            for path, data in audio_sources(split)]


def _short(key: str) -> str:
    """A file as a warning names it (`data.clip_digests.folder_and_name`); a clip held as bytes by its digest."""
    return key if key.startswith("bytes:") else folder_and_name(key)


def _repeated_files(dataset: DatasetDict, keys: dict[str, list[str]]) -> list[str]:
    """A file listed more than once in a split counts once per listing; with two labels it is an error."""
    warnings = []
    for name, split in dataset.items():
        counts = Counter(keys[name])
        repeated = sorted(key for key, n in counts.items() if n > 1)
        if not repeated:
            continue
        labels = defaultdict(set)
        for key, label in zip(keys[name], column_values(split, "label")):
            labels[key].add(str(label))
        conflicting = [key for key in repeated if len(labels[key]) > 1]
        if conflicting:
            raise DataError(f"{conflicting[0]}: listed {counts[conflicting[0]]} times in split '{name}' with different "
                            f"labels ({len(conflicting)} such file(s)); give each file one label")
        warnings.append(f"{len(repeated)} file(s) listed more than once in the {name} split, each listing counted "
                        f"as a clip ({first_few([_short(key) for key in repeated])})")
    return warnings


def _shared_files(keys: dict[str, list[str]]) -> list[str]:
    names = list(keys)
    warnings = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = sorted(set(keys[a]) & set(keys[b]))
            if shared:
                warnings.append(f"{len(shared)} file(s) are in both the {a} and the {b} split, so {b} scores include "
                                f"clips seen in {a} ({first_few([_short(key) for key in shared])})")
    return warnings


def _shared_contents(keys: dict[str, list[str]]) -> list[str]:
    """Copies: different files with the same bytes in two splits. Only files whose size another split's file
    also has are read, so distinct data costs one `stat` per file."""
    sizes = defaultdict(set)  # size -> splits
    sized = {name: [(key, os.path.getsize(key)) for key in set(split_keys) if os.path.isfile(key)]
             for name, split_keys in keys.items()}
    for name, files in sized.items():
        for _, size in files:
            sizes[size].add(name)
    digests = defaultdict(dict)  # digest -> {split: path}
    for name, files in sized.items():
        for key, size in files:
            if len(sizes[size]) > 1:
                with open(key, "rb") as f:
                    digests[hashlib.sha1(f.read()).hexdigest()].setdefault(name, key)
    pairs = defaultdict(list)  # (split, other split) -> copies
    for holders in digests.values():
        names = list(holders)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if holders[a] != holders[b]:  # the same file in both is `_shared_files`' finding
                    pairs[(a, b)].append(f"{_short(holders[b])} = {_short(holders[a])}")
    return [f"{len(copies)} file(s) of the {b} split have the same contents as a file of the {a} split, so {b} scores "
            f"include clips seen in {a} ({first_few(copies)})" for (a, b), copies in pairs.items() if copies]


def _group_leaks(dataset: DatasetDict) -> list[str]:
    return [f"groups leak across the {pair} splits ({len(groups)}: {first_few(groups)}): scores on them are not for "
            "unseen groups" for pair, groups in leaked_groups(dataset).items()]


def _missing_classes(dataset: DatasetDict) -> list[str]:
    """Classes without a clip in a split: train never sees them; evaluation scores leave them out."""
    warnings = []
    for name, split in dataset.items():
        feature = split.features["label"]
        names = list(getattr(feature, "names", None) or getattr(getattr(feature, "feature", None), "names", []))
        labels = column_values(split, "label")
        multi_label = any(isinstance(label, list) for label in labels)
        present = {i for label in labels for i in (label if isinstance(label, list) else [label])}
        missing = [names[i] for i in range(len(names)) if i not in present]
        if not missing:
            continue
        consequence = ("the model never sees them" if name == "train" else
                       "their F1, recall and AP are undefined there, left out of the macro averages" if multi_label
                       else f"its scores leave them out (accuracy is over {len(names) - len(missing)} class(es); "
                       "macro-F1 leaves them out unless predicted, a false alarm counting as 0)")
        if name != "train" and not multi_label and len(names) - len(missing) == 1:
            consequence += "; a model that always answers the one class left scores accuracy 1.0"
        warnings.append(f"the {name} split has no clip of {len(missing)} of {len(names)} classes "
                        f"({first_few(missing)}): {consequence}")
    return warnings
