"""Labels as class ids: one integer `ClassLabel` column per split, the same names in every split.

Single-label data gives each clip one label; multi-label data (`encode_labels(..., multi_label=True)`) a list of
them (`List(ClassLabel)`): a `;`-separated string in a CSV/TSV manifest (`dog;siren`) or a cell written as a list
of strings (`["dog", "glass, breaking"]`, or pandas' `['dog', 'siren']`: read whole, never split), a JSON list or
such a string in a JSONL manifest, a list column (`List`/`Sequence` of strings or of `ClassLabel`) in a datasets
dataset. An audiofolder's folder names stay single-label; a manifest is the way to give clips several labels. The
label column is `label`, else `labels` (or what `label_column` names). An empty list (an empty CSV cell, `[]` in
JSONL) is a clip with no event: an all-zero target (background-only clips). A split in which *no* clip has a label
is an error (almost surely the wrong column). Errors name a clip by its manifest and data row (`encode_labels`'
`source`), else by its file. A label is stripped (with a warning) and read in composed Unicode (NFC: a macOS
folder's `café` is the keyboard's `café`); one holding a line break or other control character, a spreadsheet's
error value (`#N/A`) or mangled text (`cafÃ©`) is an error naming its clip. Otherwise a label is kept as written
(`01`, `1.0`, `NA`, `None`, `a|b`); labels differing only in letter case (`Yes`, `yes`) are two classes, with a warning.
"""

from __future__ import annotations

import logging
import math
import unicodedata
from typing import Any, Callable, Mapping, Optional, Sequence

from datasets import ClassLabel, Dataset, DatasetDict, Features, LargeList, List, Value

from hfspeech.data.audio import describe_source
from hfspeech.data.broken_labels import class_names_written_in, label_values_written_in, refuse_broken_labels
from hfspeech.data.cache_users import beside_users_files
from hfspeech.data.columns import column_values
from hfspeech.path_names import shown_name
from hfspeech.data.manifests import bracketed_cell, list_cell
from hfspeech.errors import DataError
from hfspeech.models.scores import unnamed_labels

logger = logging.getLogger("hfspeech.data")

LABEL_SEPARATOR = ";"
# What a multi-label cell is split at, when not at the given one; with the full-width forms of Chinese and Japanese
# text (`狗；警报`, `猫，狗`, `警报、猫`), which before became classes of their own without a word.
LIKELY_SEPARATORS = (";", ",", "|", "\uff1b", "\uff0c", "\u3001", "\uff5c")  # ；，、｜


def encode_labels(dataset: DatasetDict, label_names: Optional[Sequence[str]] = None, multi_label: bool = False,
                  separator: str = LABEL_SEPARATOR, source: Optional[Mapping[str, Any]] = None,
                  allow_no_event: bool = False) -> DatasetDict:
    """Give every split the same integer `ClassLabel` column (`List(ClassLabel)` when `multi_label`).

    Without `label_names` the classes are the labels of the training split (or of all splits when there
    is none) in the order of the data's `ClassLabel` names where it has them -- so that a model's class ids
    are the dataset's, as in transformers' `run_audio_classification.py` -- else sorted. A label outside
    those classes -- in another split, or in data for a model trained on other labels -- raises a
    `DataError` naming the label and a clip that has it.
    `separator` splits a multi-label string such as `dog;siren`. `source`: the keyword arguments the data was
    loaded with (`DataSpec.source`); a split read from a manifest (`train_file` ...) has its clips named by the
    manifest and data row, where the user mends the cell, rather than by the audio file. `allow_no_event`: a
    multi-label split in which no clip has a label is read as that (an event detector's false-alarm set, held out),
    not refused as the wrong column.
    """
    namers = {name: _row_namer(split, (source or {}).get(f"{name}_file")) for name, split in dataset.items()}
    named_in = (class_names_written_in(source), label_values_written_in(source))  # ClassLabel names, strings
    labels = {name: (_label_lists(split, separator, name, namers[name], named_in, allow_no_event) if multi_label
                     else _label_strings(split, name, namers[name], named_in)) for name, split in dataset.items()}
    if label_names is None:
        fitted = ["train"] if "train" in dataset else list(dataset)
        present = {s for name in fitted for s in _flatten(labels[name], multi_label)}
        declared = [n for n in dict.fromkeys(_declared_names(dataset[fitted[0]])) if n in present]
        label_names = declared + sorted(present - set(declared), key=_class_order(dataset[fitted[0]]))
        _warn_case_twins(label_names)
    label_names = [str(n) for n in label_names]
    index = {written_form(name): i for i, name in enumerate(label_names)}  # a model saved before NFC: its ids
    class_label = ClassLabel(names=label_names)

    encoded = {}
    for split_name, split in dataset.items():
        strings = labels[split_name]
        unknown = sorted({s for s in _flatten(strings, multi_label) if s not in index})
        if unknown:
            row = next(i for i, s in enumerate(strings) if unknown[0] in (s if multi_label else [s]))
            raise DataError(
                f"{namers[split_name](row)}: unknown label '{unknown[0]}' in split '{split_name}' "
                f"({len(unknown)} unknown label(s): {unknown[:10]}); known labels: {label_names}"
                + _unnamed_hint(label_names))
        if multi_label:
            ids, feature = [[index[s] for s in clip] for clip in strings], List(class_label)
        else:
            ids, feature = [index[s] for s in strings], class_label
        encoded[split_name] = _with_label_column(split, ids, feature)
    return DatasetDict(encoded)


def _unnamed_hint(label_names) -> str:
    """A model saved without class names has transformers' `LABEL_0`, `LABEL_1`, ...: say where names go."""
    if unnamed_labels(label_names):
        return " (the model's classes have no names: set id2label and label2id in its config.json)"
    return ""


def _with_label_column(split: Dataset, ids: list, feature) -> Dataset:
    """`split` with class `ids` of `feature` as labels: the cast's copy of a user's saved split goes to the cache."""
    split = split.remove_columns("label").add_column("label", ids)
    if (name := beside_users_files(split, "labels", feature)) is None:
        return split.cast_column("label", feature)
    return split.cast(Features({**split.features, "label": feature}), cache_file_name=name)


def holds_label_lists(split: Dataset) -> bool:
    """Whether an encoded split's labels are lists (`List(ClassLabel)`) rather than one `ClassLabel`."""
    return isinstance(split.features["label"], (List, LargeList))


def label_names_of(split: Dataset) -> list[str]:
    """The class names of an encoded split, single- or multi-label."""
    feature = split.features["label"]
    return list((feature.feature if holds_label_lists(split) else feature).names)


def _declared_names(split: Dataset) -> list[str]:
    """The `ClassLabel` names of a split's raw label column (one label, or a list of them), stripped; else []."""
    feature = split.features["label"]
    feature = feature.feature if holds_label_lists(split) else feature
    return [written_form(str(name)) for name in feature.names] if isinstance(feature, ClassLabel) else []


def _class_order(split: Dataset) -> Optional[Callable[[str], Any]]:
    """How labels without declared names are ordered into class ids: as numbers when the column holds integers
    (1, 2, 10, 11 were ids 0-3 as '1', '10', '11', '2'), else as text."""
    feature = split.features.get("label")
    inner = getattr(feature, "feature", feature)  # a list column's items
    return int if isinstance(inner, Value) and inner.dtype.startswith(("int", "uint")) else None  # not a ClassLabel


def _flatten(labels: list, multi_label: bool):
    return (s for clip in labels for s in clip) if multi_label else labels


def _row_namer(split: Dataset, manifest: Optional[str]) -> Callable[[Optional[int]], str]:
    """How a message names a clip (a row of `split`; None: the split): by its manifest and data row, from 1 as
    `data.loading` counts them, else by its file as `shown_name` shows it (not `new line/a.wav` for `new\nline`)."""
    if manifest:
        return lambda row: str(manifest) if row is None else f"{manifest}: row {row + 1}"
    return lambda row: shown_name(describe_source(split.select([row or 0])[0]["audio"]))


def _label_strings(split: Dataset, split_name: str, where: Callable, named_in: tuple[str, str]) -> list[str]:
    """Labels as strings: ClassLabel ids are mapped to their names, anything else is str()-ed (`named_in`: where
    each was written, `broken_labels`)."""
    feature = split.features["label"]
    values = column_values(split, "label")
    if isinstance(feature, ClassLabel):
        return _stripped(_class_names(feature, values, split_name, where), where, named_in[0])
    if holds_label_lists(split) or any(isinstance(v, (list, tuple)) for v in values):
        raise DataError(f"{where(None)}: the labels are lists (multi-label data); "
                        "train with --problem_type multi_label_classification")
    if any(v is None or (isinstance(v, str) and not v.strip()) for v in values):
        row = next(i for i, v in enumerate(values) if v is None or (isinstance(v, str) and not v.strip()))
        raise DataError(f"{where(row)}: empty label")
    joined = next((str(v) for v in values if LABEL_SEPARATOR in str(v)), None)
    if joined is not None:  # `dog;siren` is how a manifest lists several labels: a class of its own is a likely slip
        logger.warning("single-label data with the label %r: a class of its own; if it lists several labels, "
                       "train with --problem_type multi_label_classification", joined)
    return _stripped([str(v) for v in values], where, named_in[1])


def _class_names(feature: ClassLabel, ids: list, split_name: str, where: Callable,
                 rows: Optional[list[int]] = None) -> list[str]:
    """The names of `ClassLabel` ids; -1 (datasets' mark of a clip without a label: a test split without the
    answers) is a `DataError` naming a clip, not `int2str`'s traceback. `rows`: each id's row, when not its index."""
    bad = [i for i, v in enumerate(ids) if not isinstance(v, int) or not 0 <= v < feature.num_classes]
    if bad:
        row = bad[0] if rows is None else rows[bad[0]]
        raise DataError(f"{where(row)}: {len(bad)} clip(s) have the class id "
                        f"{ids[bad[0]]} in split '{split_name}' and no label ({feature.num_classes} classes; -1 "
                        "marks an unlabelled clip): a split used for training or scores needs labels; name a "
                        "labelled split (--train_split_name / --eval_split_name / --test_split_name)")
    return [feature.names[v] for v in ids]


def _stripped(labels: list[str], where: Callable, written_in: str = "cell") -> list[str]:
    """Labels without leading/trailing whitespace (`"yes "` is `yes`, not a class of its own), with a warning
    naming a file whose label had it, in composed Unicode (`written_form`); a control character is refused."""
    padded = [i for i, label in enumerate(labels) if label != label.strip()]
    if padded:
        logger.warning("%d label(s) had leading or trailing whitespace, stripped (e.g. %r for %s)", len(padded),
                       labels[padded[0]], where(padded[0]))
    forms = _written_forms(set(labels))
    labels = [forms[label] for label in labels]
    if "" in labels:  # a folder named ` ` (a ClassLabel name of spaces): strings were checked before
        raise DataError(f"{where(labels.index(''))}: empty label")
    refuse_broken_labels(labels, where, lists=False, written_in=written_in)
    return labels


def written_form(label: str) -> str:
    """A label stripped and in composed Unicode (NFC): `café` typed on a keyboard and `café` in a macOS folder
    name (decomposed, NFD: `e` + a combining accent) look alike and are one class, not two."""
    return unicodedata.normalize("NFC", label.strip())


def _written_forms(distinct: set[str]) -> dict[str, str]:
    """`written_form` of each distinct label: few over many rows (each row's took as long as all the rest)."""
    return {label: written_form(label) for label in distinct}


def _warn_case_twins(label_names: list[str]) -> None:
    """`Yes` and `yes` are two classes (as written), but rarely meant to be: say so, once."""
    by_case: dict[str, list[str]] = {}
    for name in label_names:
        by_case.setdefault(name.casefold(), []).append(name)
    twins = [names for names in by_case.values() if len(names) > 1]
    if twins:
        logger.warning("%d group(s) of labels differ only in letter case and are separate classes (e.g. %s); if "
                       "they are one class, write them alike", len(twins), " and ".join(map(repr, twins[0])))


def _label_lists(split: Dataset, separator: str, split_name: str, where: Callable,
                 named_in: tuple[str, str], allow_no_event: bool = False) -> list[list[str]]:
    """Each clip's labels as a list of strings, duplicates dropped, from any of the accepted forms (`named_in`:
    where ClassLabel names and label strings were written)."""
    feature = split.features["label"]
    values = column_values(split, "label")
    if isinstance(feature, ClassLabel):  # an audiofolder: one label per clip
        lists = [[name] for name in _class_names(feature, values, split_name, where)]
    elif holds_label_lists(split) and isinstance(getattr(feature, "feature", None), ClassLabel):
        flat = _class_names(feature.feature, [v for clip in values for v in clip], split_name, where, [
            row for row, clip in enumerate(values) for _ in clip])
        names = iter(flat)
        lists = [[next(names) for _ in clip] for clip in values]
    else:
        read = [_as_list(v) for v in values]  # a cell written as a list, as that list: never split
        _check_separator(values, read, separator, where)
        lists = [parse_label_list(v, separator) for v in read]
        _refuse_labelless_cells(values, read, lists, separator, where)
    forms = _written_forms({label for clip in lists for label in clip})
    lists = [list(dict.fromkeys(forms[label] for label in clip)) for clip in lists]
    refuse_broken_labels(lists, where, lists=True, written_in=named_in[0] if isinstance(
        getattr(feature, "feature", feature), ClassLabel) else named_in[1])
    if lists and not any(lists) and not allow_no_event:
        raise DataError(f"{where(None)}: no clip in split '{split_name}' has a label (empty label column? "
                        f"multi-label strings are split at {separator!r})")
    return lists


def _as_list(value):
    """A string cell written as a list of strings (`list_cell`) as that list; any other value as it is."""
    cell = list_cell(value) if isinstance(value, str) else None
    return value if cell is None else cell


def _refuse_labelless_cells(values: list, read: list, lists: list[list[str]], separator: str,
                            where: Callable) -> None:
    """A cell that is not empty but holds no label (`;`, `dog;` is fine, `[""]`) is an error naming its row: it
    became a clip with no event without a word. An empty cell (`[]`, null) is the way to say "no event".
    `values`: the cells as written; `read`: as read (`_as_list`)."""
    def written(value) -> bool:
        return bool(value.strip()) if isinstance(value, str) else isinstance(value, (list, tuple)) and bool(value)

    row = next((i for i, labels in enumerate(lists) if not labels and written(read[i])), None)
    if row is not None:
        listed = isinstance(read[row], (list, tuple))
        how = "a list of no label" if listed else f"no label (labels are split at {separator!r})"
        raise DataError(f"{where(row)}: label cell {values[row]!r} holds {how}; leave it empty ([] for a list) "
                        "for a clip with no event")


def _check_separator(values: list, read: list, separator: str, where: Callable) -> None:
    """`--label_separator ,` on `dog;siren` cells split nothing and trained on the class 'dog;siren': when the
    separator is in no string cell but another usual one is, the one in the most cells is named (`a|b` cells, one
    `glass, breaking|siren`: `|`). A cell that only looks like a list (`[dog, siren]`) is refused, never split."""
    strings = [i for i, v in enumerate(read) if isinstance(v, str)]
    bracketed = next((i for i in strings if bracketed_cell(values[i])  # `[noise]`, holding none, is a label
                      and any(s in values[i] for s in (separator, "'", '"', *LIKELY_SEPARATORS))), None)
    if bracketed is not None:  # refused before any split: `dog;cat` beside it split `[dog;siren]` in two
        raise DataError(f"{where(bracketed)}: label cell {values[bracketed]!r} looks like a list but is not a "
                        'list of quoted strings: write it as ["dog", "siren"] (or as dog;siren)')
    if any(separator in values[i] for i in strings):
        return
    holding = {other: [i for i in strings if other in values[i].strip(other + " ")]
               for other in LIKELY_SEPARATORS if other != separator}
    best = max(holding, key=lambda other: len(holding[other]))  # on a tie, the first of LIKELY_SEPARATORS
    if holding[best]:
        row = holding[best][0]
        raise DataError(f"{where(row)}: label cell {values[row]!r} holds {best!r} but no cell holds the label "
                        f"separator {separator!r}: set --label_separator {best!r} ({len(holding[best])} of "
                        f"{len(strings)} cells hold it)")


def parse_label_list(value, separator: str) -> list[str]:
    """`None`/`""`/`[]` -> [] (a clip with no event); `"a;b"` -> ["a", "b"]; `["a", "b"]` and a cell written so
    (`list_cell`) as is."""
    if value is None or (isinstance(value, float) and math.isnan(value)):  # an empty CSV cell
        return []
    if isinstance(value, str) and (cell := list_cell(value)) is not None:
        value = cell
    if isinstance(value, str):
        return [part.strip() for part in value.split(separator) if part.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]
    return [str(value)]
