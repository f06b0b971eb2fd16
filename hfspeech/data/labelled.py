"""The one entry to the data stage: a `DataSpec` in, labelled splits out.

`load_labelled_splits(spec)` loads any layout (`data.loading`), encodes the labels (`data.labels`), makes
the validation/test splits the data lacks (`data.splits`) and applies the sample limits -- the same steps
for a map-style training run (which then decodes them once, `data.prepare`), a streamed one (which keeps
train as a stream of references, `data.streaming`) and `hfspeech evaluate` (one split, the model's labels).
The spec knows nothing about training: `training.arguments.DataArguments.spec()` builds it from the flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from datasets import DatasetDict

from hfspeech.data.dataset_columns import parts_of_one_table
from hfspeech.data.groups import GROUP_COLUMN, attach_groups, group_disjoint_splits
from hfspeech.data.labels import LABEL_SEPARATOR, encode_labels
from hfspeech.data.loading import is_saved_dataset, load_audio_dataset
from hfspeech.data.prepare import DataReport
from hfspeech.data.speech_commands import (speaker_carve_kept, split_method,  # split_method: the run records it
                                           with_speaker_groups)
from hfspeech.data.split_audit import (audit_repeats, audit_splits, refuse_unseen_carved_classes, split_class_names,
                                      unseen_carved_classes)
from hfspeech.data.split_names import SPLIT_ALIASES
from hfspeech.data.splits import in_file_order, make_splits
from hfspeech.errors import DataError


@dataclass(frozen=True)
class DataSpec:
    """Where the data is, how labels are read, how it is split and limited, how clips are decoded."""

    source: dict[str, Any] = field(default_factory=dict)  # keyword arguments of `load_audio_dataset`
    preparation: dict[str, Any] = field(default_factory=dict)  # keyword arguments of `prepare_dataset`
    label_separator: str = LABEL_SEPARATOR
    class_names: Optional[str] = None  # 'a,b,c' in class-id order (a streamed dataset without ClassLabel)
    validation_percentage: float = 10.0  # of the data held out when there is no such split
    test_percentage: float = 10.0
    max_train_samples: Optional[int] = None
    max_eval_samples: Optional[int] = None
    shuffle_buffer_size: int = 1000
    group_column: Optional[str] = None  # a manifest column (speaker, session): missing splits take whole groups
    # the given splits are parts of one table (cross-validate's folds of one manifest), decoded once for all of them
    parts_of_one_table: bool = False

    @property
    def is_local(self) -> bool:
        """Audio folders, manifests and `save_to_disk` folders have a cheap index (one path and label per clip)."""
        files = ("data_dir", "train_file", "validation_file", "test_file")
        return any(self.source.get(key) for key in files) or is_saved_dataset(self.source.get("dataset_name"))


def load_labelled_splits(spec: DataSpec, seed: int, label_names: Optional[Sequence[str]] = None,
                         multi_label: bool = False, report: Optional[DataReport] = None) -> DatasetDict:
    """Training data: train (required), validation and test (carved out of train when absent), labels
    encoded (the training labels' sorted names unless `label_names`), limits applied. Audio undecoded."""
    raw = load_audio_dataset(**spec.source, report=report)
    if "train" not in raw:
        raise DataError(f"training needs a 'train' split; the data has {list(raw)} (give --train_file, "
                        "or an audio folder without split folders, or a dataset with a train split)")
    if spec.group_column:  # group-disjoint splits, and a warning where the given ones share groups
        raw = attach_groups(raw, spec.source, spec.group_column)
    else:  # an audio folder of `<speaker>_nohash_<n>` files (Speech Commands): grouped by speaker
        raw = with_speaker_groups(raw, spec.source, spec.validation_percentage / 100, spec.test_percentage / 100,
                                  report)
    raw = encode_labels(raw, label_names, multi_label=multi_label, separator=spec.label_separator,
                       source=spec.source)
    if not multi_label:
        refuse_one_class(raw["train"], spec.source)
    if spec.parts_of_one_table:  # after the columns are added and encoded, which make a new table of each split
        raw = parts_of_one_table(raw)
    audit_repeats(raw, report)  # a row listed twice: counted twice, and a random split may put it on both sides
    raw = _carved(raw, spec, seed, report)
    raw = limit_samples(raw, spec, seed, report)
    audit_splits(raw, report)  # leaks and degenerate splits: warned, and recorded in the report
    return raw


def refuse_one_class(train, source: dict) -> None:
    """A single-label training set of one class makes a classifier whose softmax answers that class whatever it
    hears, and which scores accuracy 1.0 on its test split: `demo-data --kind events` read with --data_dir (its
    clips sit in one folder, `audio/`) trained such a model without a word. Refused, with the manifest to give
    where the folder holds one (multi-label data lists its labels there)."""
    names = split_class_names(train)
    if len(names) != 1:
        return
    folder = source.get("data_dir")
    manifests = [str(Path(folder) / name) for name in ("labels.csv", "labels.jsonl") if folder and
                 (Path(folder) / name).is_file()]
    hint = (f"; to train on the labels of {manifests[0]}, give --train_file {manifests[0]}" if manifests else
            "; a folder's classes are its subfolders, a manifest's its label column")
    raise DataError(f"{folder or 'the training data'}: every training clip has one label ({names[0]!r}): a "
                    f"classifier needs two classes or more{hint}")


def _carved(raw: DatasetDict, spec: DataSpec, seed: int, report: Optional[DataReport]) -> DatasetDict:
    """The splits `raw` lacks carved: by whole groups where it has them, else stratified. Whole groups held out must
    not be whole classes: refused under `--group_column` (the label used as the group), and a Speech Commands
    speaker carve (`data.speech_commands`) falls back to carving by file."""
    shares = (spec.validation_percentage / 100, spec.test_percentage / 100)
    if GROUP_COLUMN not in raw["train"].column_names:
        return make_splits(raw, *shares, seed)
    carved = group_disjoint_splits(raw, *shares, seed)
    names = [name for name in carved if name not in raw]
    if spec.group_column:
        refuse_unseen_carved_classes(carved, names, spec.group_column)
    elif not speaker_carve_kept(names, unseen_carved_classes(carved, names), report):
        return make_splits(DatasetDict({name: split.remove_columns(GROUP_COLUMN) for name, split in raw.items()}),
                           *shares, seed)
    return carved


def load_evaluation_split(spec: DataSpec, label_names: Sequence[str], split: Optional[str] = None,
                          multi_label: bool = False, report: Optional[DataReport] = None,
                          allow_no_event: bool = False) -> DatasetDict:
    """One split (default: test, else the first) labelled with a trained model's `label_names`: a label the
    model does not know is an error naming the file, not a silent mistake. The split is keyed by the name the
    data gives it; `split` may also be its role (`validation` for a `dev` split), as training reads it.
    `allow_no_event`: a multi-label split with no label in any clip is a false-alarm set (`encode_labels`)."""
    raw = load_audio_dataset(**spec.source, report=report, choose_split=lambda names: evaluated_split(names, split))
    split = evaluated_split(list(raw), split)  # a datasets dataset's is chosen: only its splits are read
    return encode_labels(DatasetDict({split: raw[split]}), label_names, multi_label=multi_label,
                         separator=spec.label_separator, source=spec.source, allow_no_event=allow_no_event)


def evaluated_split(available: list[str], split: Optional[str]) -> str:
    """`hfspeech evaluate --split`: a split as the data names it (`dev`), else the one split in the role
    it names (`validation`: `dev`, `val` ...; `data.split_names.SPLIT_ALIASES`)."""
    if split is None:
        return "test" if "test" in available else available[0]
    if split in available:
        return split
    role = SPLIT_ALIASES.get(split, split)
    matches = [name for name in available if SPLIT_ALIASES.get(name, name) == role]
    if len(matches) != 1:
        which = f"the splits {matches} are each a {role} split: name one" if matches else "no such split in the data"
        if available == ["train"]:  # a folder without split folders: datasets names its one split `train`
            which = ("the data is one split, which datasets names train (a folder without split folders); leave "
                     "--split out")
        raise DataError(f"--split {split}: {which} (splits: {available})")
    return matches[0]


def limit_samples(raw: DatasetDict, spec: DataSpec, seed: int, report: Optional[DataReport] = None) -> DatasetDict:
    """At most `max_train_samples` / `max_eval_samples` clips per split, a seeded random choice drawn from the
    clips in `in_file_order`: a manifest given as is (not carved) lists its rows in any order, which the choice
    followed."""
    limits = {"train": spec.max_train_samples, "validation": spec.max_eval_samples, "test": spec.max_eval_samples}
    limited = dict(raw)
    for name, limit in limits.items():
        if name in limited and limit is not None and limit < len(limited[name]):
            if report is not None:
                report.limited[name] = len(limited[name]) - limit
            limited[name] = in_file_order(limited[name]).shuffle(seed=seed).select(range(limit))
    return DatasetDict(limited)
