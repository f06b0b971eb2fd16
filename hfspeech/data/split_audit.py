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
not a leak but a contradiction: a `DataError`. With groups (`--group_column`), it also says which groups each
split holds (`record_split_groups`): one line logged, and a note in `data_report.json`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter, defaultdict
from typing import Any, Callable, Optional

from datasets import Dataset, DatasetDict

from hfspeech.data.clip_digests import audio_sources, folder_and_name
from hfspeech.data.columns import column_values
from hfspeech.data.groups import GROUP_COLUMN, leaked_groups
from hfspeech.data.prepare import DataReport
from hfspeech.errors import DataError, first_few

logger = logging.getLogger("hfspeech.data")
HEAD_BYTES = 4096  # read of a file whose size a file of another split has, before reading it whole
GROUPS_NAMED = 20  # groups named per split in the groups note (thousands of speakers: the first, and the count)
GROUPS_NOTE = "groups per split"


def audit_repeats(dataset: DatasetDict, report: Optional[DataReport] = None) -> list[str]:
    """Files listed more than once in a split, as loaded (before a split carved from train can put the two
    listings on both sides): warned and recorded; with two labels, a `DataError`."""
    return _record(_repeated_files(dataset, {name: _clip_keys(split) for name, split in dataset.items()}), report)


def audit_splits(dataset: DatasetDict, report: Optional[DataReport] = None) -> list[str]:
    """Warnings about files (or their contents, or groups) shared by the final splits, and classes missing
    from a split; each one logged and added to `report.warnings`. Returns them."""
    keys = {name: _clip_keys(split) for name, split in dataset.items()}
    warnings = [*_shared_files(keys), *_shared_contents(keys), *_group_leaks(dataset),
                *_missing_classes(dataset, report=report)]
    record_split_groups(dataset, report)
    return _record(warnings, report)


def record_split_groups(dataset: DatasetDict, report: Optional[DataReport] = None) -> Optional[str]:
    """Which groups each split holds, sorted, `GROUPS_NAMED` named and all counted (`train 3 (ann, bob, cy);
    validation 1 (dan); test 1 (eve)`), logged as one line and added to `report.notes` (`data_report.json`). A run
    with `--group_column` said nothing of the groups it held out: a user learnt which speakers were its test set
    only from `hfspeech evaluate`'s leak warning. None (nothing said) for splits without groups."""
    members = {name: sorted(set(map(str, column_values(split, GROUP_COLUMN)))) for name, split in dataset.items()
               if GROUP_COLUMN in split.column_names}
    if not members:
        return None
    said = [f"{name} {len(groups)}" + (f" ({first_few(groups, GROUPS_NAMED)})" if groups else "")
            for name, groups in members.items()]
    note = f"{GROUPS_NOTE}: {'; '.join(said)}"
    logger.info("data: %s", note)
    if report is not None:
        report.notes.append(note)
    return note


def _record(warnings: list[str], report: Optional[DataReport]) -> list[str]:
    for warning in warnings:
        logger.warning("data: %s", warning)
    if report is not None:
        report.warnings.extend(warnings)
    return warnings


def _clip_keys(split: Dataset) -> list[str]:
    """Each clip's identity: the real path of its file (links and `./` resolved), or a digest of its bytes."""
    real_path = _real_paths()
    return [real_path(path) if path and data is None else "bytes:" + hashlib.sha1(data or b"").hexdigest()
            for path, data in audio_sources(split)]


def _real_paths() -> Callable[[str], str]:
    """`os.path.realpath` of many files, each folder resolved once. realpath checks every folder on a file's way
    (an `lstat` each: seven for a file six folders deep, half of a 40,000-clip audit's time), and the clips of a
    split share a few folders. A file that is itself a link is resolved whole, as realpath does."""
    folders: dict[str, str] = {}

    def real_path(path: str) -> str:
        folder, name = os.path.split(path)
        if name in ("", ".", "..") or os.path.islink(path):
            return os.path.realpath(path)
        if folder not in folders:
            folders[folder] = os.path.realpath(folder)
        return os.path.join(folders[folder], name)

    return real_path


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
    """Copies: different files with the same bytes in two splits. A file is read only when a file of another split
    has its size, and read whole only when that one also has its first `HEAD_BYTES`: distinct data costs one `stat`
    per file, and clips of one length (a keyword set's 1-s WAVs all have one size) a few KB each, not the whole set.
    Files are taken in the splits' order: taken from a `set`, the copies a warning names changed from run to run.
    Empty files are no recordings (decoding refuses them, or skips them with `--skip_bad_files`): two of them in
    two splits were warned of as a copy, a leak on the model card."""
    sized = _in_several_splits({name: [(key, size) for key in dict.fromkeys(split_keys)
                                       if os.path.isfile(key) and (size := os.path.getsize(key))]
                                for name, split_keys in keys.items()})
    headed = _in_several_splits({name: [(key, (size, _file_digest(key, HEAD_BYTES))) for key, size in files]
                                 for name, files in sized.items()})
    digests = defaultdict(dict)  # digest -> {split: path}
    for name, files in _in_several_splits({name: [(key, _file_digest(key)) for key, _ in files]
                                           for name, files in headed.items()}).items():
        for key, digest in files:
            digests[digest].setdefault(name, key)
    pairs = defaultdict(list)  # (split, other split) -> copies
    for holders in digests.values():
        names = list(holders)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if holders[a] != holders[b]:  # the same file in both is `_shared_files`' finding
                    pairs[(a, b)].append(f"{_short(holders[b])} = {_short(holders[a])}")
    return [f"{len(copies)} file(s) of the {b} split have the same contents as a file of the {a} split, so {b} scores "
            f"include clips seen in {a} ({first_few(copies)})" for (a, b), copies in pairs.items() if copies]


def _in_several_splits(files: dict[str, list[tuple[str, Any]]]) -> dict[str, list[tuple[str, Any]]]:
    """Of each split's (file, what it is known by: size, digest), those known by what a file of another split is."""
    splits_of = defaultdict(set)
    for name, entries in files.items():
        for _, value in entries:
            splits_of[value].add(name)
    return {name: [(key, value) for key, value in entries if len(splits_of[value]) > 1]
            for name, entries in files.items()}


def _file_digest(path: str, limit: Optional[int] = None) -> str:
    """SHA-1 of a file's first `limit` bytes, or of all of it read in chunks (an hour-long WAV is not held whole).
    A file that cannot be read (another user's 0600 clip) has its path for a digest, the same as no other file's: it
    is no copy of one, and decoding names it as the bad file it is (skipped and counted with --skip_bad_files), as
    `clip_digests` and evaluation leave it; it was a PermissionError traceback here, --skip_bad_files or not."""
    try:
        with open(path, "rb") as f:
            return (hashlib.sha1(f.read(limit)) if limit is not None else hashlib.file_digest(f, "sha1")).hexdigest()
    except OSError:
        return "unread:" + path


def _group_leaks(dataset: DatasetDict) -> list[str]:
    """One warning per pair of splits sharing groups, saying what it costs; for train/validation also what to do: it
    said only that they leak, in every fold of a cross-validation, where validation shares the training groups by
    design (with 2 groups, the fold's one training group is all there is to draw validation from)."""
    return [f"groups leak across the {pair} splits ({len(groups)}: {first_few(groups)}): {_leak_advice(pair)}"
            for pair, groups in leaked_groups(dataset).items()]


def _leak_advice(pair: str) -> str:
    if "test" in pair:
        return "scores on them are not for unseen groups"
    return ("validation scores (which pick the best checkpoint) are for groups trained on, and flatter; for "
            "validation on unseen groups, give a --validation_file of other groups (hfspeech "
            "cross-validate draws validation from the training groups by design: with few groups there is no other)")


def audit_missing_classes(dataset: DatasetDict, report: Optional[DataReport] = None,
                          called: Optional[str] = None) -> list[str]:
    """`_missing_classes` of splits that are all scored, none trained on, logged and recorded: `hfspeech
    evaluate`'s set lacking a model's classes (one speaker's clips scored by a speaker-ID model) leaves its accuracy
    over the classes present and its macro-F1 a mean with absent classes' zeros, as for training's own held-out
    splits. `called`: the clips' name where a split's would misname them (a folder without split folders is `train`)."""
    return _record(_missing_classes(dataset, trained=None, called=called, report=report), report)


def refuse_unseen_carved_classes(dataset: DatasetDict, carved: list[str], group_column: str) -> None:
    """A split carved by whole groups (`--group_column`) that holds a class the train split has no clip of is a
    `DataError`: with the label as the group (speaker ID grouped by speaker) every held-out class was one the
    model never trained on, its test accuracy 0 by construction and validation picking the "best" checkpoint on
    classes it cannot answer, with only warnings. Given splits are the user's choice: they keep the warnings."""
    for name, unseen in unseen_carved_classes(dataset, carved).items():
        raise DataError(f"--group_column {group_column}: the {name} split carved by whole groups holds "
                        f"{len(unseen)} class(es) the train split has no clip of "
                        f"({first_few(unseen)}): {_why_unseen(dataset, group_column)}; "
                        "group by recording session, or give the splits (--validation_file, --test_file)")


def unseen_carved_classes(dataset: DatasetDict, carved: list[str]) -> dict[str, list[str]]:
    """{carved split: the names of its classes the train split has no clip of}, test first; splits without any left
    out. One rule for `--group_column`'s refusal and Speech Commands' speaker carve (`data.speech_commands`)."""
    known, unseen = _present_ids(column_values(dataset["train"], "label")), {}
    for name in ("test", "validation"):
        ids = sorted(_present_ids(column_values(dataset[name], "label")) - known) if name in carved else []
        if ids:
            unseen[name] = [split_class_names(dataset[name])[i] for i in ids]
    return unseen


def _why_unseen(dataset: DatasetDict, group_column: str) -> str:
    """Every group holding one class is the label used as the group; otherwise some class lives in held-out groups."""
    classes_of = defaultdict(set)
    for split in dataset.values():
        if GROUP_COLUMN in split.column_names:
            for group, label in zip(column_values(split, GROUP_COLUMN), column_values(split, "label")):
                classes_of[group] |= _present_ids([label])
    if classes_of and all(len(classes) == 1 for classes in classes_of.values()):
        return (f"every {group_column} group holds one class, so whole groups held out are whole classes "
                f"(is {group_column} the label?)")
    return "all their clips are in the groups held out"


def split_class_names(split: Dataset) -> list[str]:
    """A labelled split's class names in id order, single-label (`ClassLabel`) or multi-label (its list's)."""
    feature = split.features["label"]
    return list(getattr(feature, "names", None) or getattr(getattr(feature, "feature", None), "names", []))


def _present_ids(labels: list) -> set:
    """The class ids a label column holds: single-label ids, or multi-label lists of ids."""
    return {i for label in labels for i in (label if isinstance(label, list) else [label])}


def _missing_classes(dataset: DatasetDict, trained: Optional[str] = "train", called: Optional[str] = None,
                     report: Optional[DataReport] = None) -> list[str]:
    """Classes without a clip in a split (all in `report.classes_missing`; the warning names a few): the `trained`
    split never sees them; evaluation scores leave them out."""
    warnings = []
    for name, split in dataset.items():
        names = split_class_names(split)
        labels = column_values(split, "label")
        multi_label = any(isinstance(label, list) for label in labels)
        present = _present_ids(labels)
        missing = [names[i] for i in range(len(names)) if i not in present]
        if not missing:
            continue
        if report is not None:
            report.classes_missing[called or name] = missing  # evaluate's clips: named as its warning names them
        consequence = ("the model never sees them" if name == trained else
                       "their F1, recall and AP are undefined there, left out of the macro averages" if multi_label
                       else f"{'their' if called else 'its'} scores leave them out (accuracy is over "
                       f"{len(names) - len(missing)} class(es); "
                       "macro-F1 leaves them out unless predicted, a false alarm counting as 0)")
        if name != trained and not multi_label and len(names) - len(missing) == 1:
            consequence += "; a model that always answers the one class left scores accuracy 1.0"
        subject = f"the {called} hold" if called else f"the {name} split has"
        warnings.append(f"{subject} no clip of {len(missing)} of {len(names)} classes "
                        f"({first_few(missing)}): {consequence}")
    return warnings
