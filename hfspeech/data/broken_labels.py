"""Labels that are not what their writer meant: a control character (an unclosed CSV quote), a spreadsheet's error
value (`#N/A`) or UTF-8 read as Windows-1252 (`cafÃ©`: `data.file_names.spreadsheet_damage`). Each became a class of
its own without a word; now a `DataError` naming a clip, worded by where the label was written (`MENDS`)."""

from __future__ import annotations

import unicodedata
from typing import Any, Callable, Mapping, Optional

from hfspeech.data.file_names import MENDS, spreadsheet_damage
from hfspeech.errors import DataError

# Control characters (`\n`, `\t` ...) and U+2028/U+2029, which JSON keeps unescaped and editors break lines at.
LINE_BREAKING = ("Cc", "Zl", "Zp")


def class_names_written_in(source: Optional[Mapping[str, Any]]) -> str:
    """Where a `ClassLabel`'s names were written (`data.file_names.MENDS`): an audio folder's folder names
    (`data_dir`), else a dataset's class names (`dataset_name`, or data given in memory)."""
    return "folder" if (source or {}).get("data_dir") and not (source or {}).get("dataset_name") else "class"


def label_values_written_in(source: Optional[Mapping[str, Any]]) -> str:
    """Where label strings (not `ClassLabel` names) were written: a dataset's column (`dataset_name`), else a
    manifest's (or metadata.csv's) cells."""
    return "dataset" if (source or {}).get("dataset_name") else "cell"


def refuse_broken_labels(rows: list, where: Callable, lists: bool, written_in: str = "cell") -> None:
    """A `DataError` naming the first clip (`rows`: a label, or with `lists` a list, per clip) whose label has a control
    character (an unclosed CSV quote) or was mangled by a spreadsheet (`#N/A`, `cafÃ©`: `spreadsheet_damage`).
    `written_in`: a manifest's `cell`, a `folder` name or a dataset's `class` name, which say how to mend it."""
    distinct = {label for clip in rows for label in clip} if lists else set(rows)
    reasons = {label: spreadsheet_damage(label, written_in) or _line_break(label, written_in) for label in distinct}
    if bad := {label for label, reason in reasons.items() if reason}:
        clips = rows if lists else ([label] for label in rows)
        row, label = next((row, label) for row, clip in enumerate(clips) for label in clip if label in bad)
        raise DataError(f"{where(row)}: the label {label!r} {reasons[label]}")


def _line_break(label: str, written_in: str = "cell") -> Optional[str]:
    """A cell's control character is most often an unclosed quote; a folder's or a dataset's is in its name."""
    broken = any(unicodedata.category(char) in LINE_BREAKING for char in label)
    mend = "one line of text (check the quotes)" if written_in == "cell" else MENDS[written_in][0]
    return f"holds a line break or other control character; {mend}" if broken else None
