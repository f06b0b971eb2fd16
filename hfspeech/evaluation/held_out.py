"""The split `hfspeech evaluate` scores, a multi-label false-alarm set (no clip has an event) included.

The data stage refuses a split in which no clip has a label: for training, an empty label column is almost surely
the wrong column. A held-out set of background clips is how an event detector's false-alarm rate is measured
(`evaluation.false_alarms`), so evaluation reads such a set as what it is.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

from datasets import ClassLabel, DatasetDict, List

from hfspeech.data.columns import column_values
from hfspeech.data.labelled import DataSpec, evaluated_split, load_evaluation_split
from hfspeech.data.labels import encode_labels
from hfspeech.data.loading import load_audio_dataset
from hfspeech.data.manifests import list_cell
from hfspeech.data.prepare import DataReport


def load_held_out_split(spec: DataSpec, label_names: Sequence[str], split: Optional[str], multi_label: bool,
                        report: Optional[DataReport] = None) -> DatasetDict:
    """`data.labelled.load_evaluation_split`, but a multi-label split whose every label cell is empty (no clip has
    an event) is read as that: every clip's label list empty. The data stage refuses such a split (for training,
    an empty column is almost surely the wrong one); a held-out set of background clips is how an event detector's
    false-alarm rate is measured. Any other split, a cell holding `;` or `[" "]` included, is the data stage's."""
    if not multi_label:
        return load_evaluation_split(spec, label_names, split, multi_label, report=report)
    raw = load_audio_dataset(**spec.source, report=report, choose_split=lambda names: evaluated_split(names, split))
    name = evaluated_split(list(raw), split)
    clips = raw[name]
    if len(clips) and "label" in clips.column_names and all(map(_no_event, column_values(clips, "label"))):
        feature = List(ClassLabel(names=[str(n) for n in label_names]))
        clips = clips.remove_columns("label").add_column("label", [[] for _ in range(len(clips))])
        return DatasetDict({name: clips.cast_column("label", feature)})
    return encode_labels(DatasetDict({name: clips}), label_names, multi_label=True,  # as load_evaluation_split
                         separator=spec.label_separator, source=spec.source)  # does: the data read once


def _no_event(cell) -> bool:
    """A label cell that says "no event": empty or null, an empty list, or text written as one (`[]`). A cell that
    is written but holds no label (`;`, `[" "]`) is not: the data stage names its row."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return True
    if isinstance(cell, str):
        return not cell.strip() or list_cell(cell) == []
    return isinstance(cell, (list, tuple)) and len(cell) == 0
