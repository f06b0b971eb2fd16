"""A manifest's cells checked as a whole before its rows are used: text Arrow, the OS or a CSV cannot take, and
label cells written two ways (`data.loading` reads the manifest; `training.cross_validation` splits it into folds).

A JSON(L) manifest can hold text that is not UTF-8: `json.dumps` of a name `os.listdir` read from bytes that are
not UTF-8 (`r\\xe9sum\\xe9.wav`) writes the surrogate escape `"r\\udce9sum\\udce9.wav"`, which `json.loads` reads back
as such. Arrow refused it with a traceback (`surrogates not allowed`) after the manifest was read, and
cross-validate after it had made a fold's folder. Under an ASCII locale (LC_ALL=C, PYTHONUTF8=0) a path cell that
is UTF-8 (`café.wav`) cannot be given to the OS at all, and its file was reported missing.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Optional

from hfspeech.errors import DataError
from hfspeech.path_names import NOT_UTF8, shown_name, unusable_name


def refuse_text_not_utf8(manifest: str, rows: list[dict[str, Any]], path_column: Optional[str]) -> None:
    """A `DataError` naming the first row (data rows counted from 1) with a cell (a column name, a value, a value in
    a list) that is not UTF-8 text, or whose `path_column` the OS cannot be given (`path_names.unusable_name`)."""
    for number, row in enumerate(rows, start=1):
        for column, value in row.items():
            if column == path_column and isinstance(value, str) and (problem := unusable_name(value)):
                rewrite = "; then write the row with the file's new name" if problem.startswith(NOT_UTF8) else ""
                raise DataError(f"{manifest}: row {number}: {column} {shown_name(value)}: {problem}{rewrite}")
            for text, what in ((column, "a column name"), *((text, f"the {shown_name(column)} value")
                                                             for text in _texts(value))):
                if (char := _lone_surrogate(text)) is not None:
                    raise DataError(f"{manifest}: row {number}: {what} {shown_name(text)} is not UTF-8 text (it holds "
                                    f"\\u{ord(char):04x}, as json.dumps writes a byte of a name that is not UTF-8, "
                                    "e.g. Latin-1, read from the disk); write it as UTF-8 text")


def _texts(value: Any) -> Iterator[str]:
    """Every string of a cell's value (a JSON list's items, an object's keys and values)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend([*item.keys(), *item.values()])


def _lone_surrogate(text: str) -> Optional[str]:
    """The first surrogate code point of `text` (U+D800-U+DFFF, never a character of UTF-8 text), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return text[error.start]
    return None


def check_label_kinds(path: str, label_column: str, values: list, audio: list[str]) -> None:
    """JSON label cells must all be lists (`["dog", "siren"]`) or all not (`"dog;siren"`, null for none), and a
    list must hold plain values: a column mixing both crashed in Arrow with a traceback, and a nested list
    became the label `"['dog']"`."""
    is_list = [isinstance(v, list) for v in values]
    if any(is_list) and not all(is_list[i] or values[i] is None for i in range(len(values))):
        odd = next(i for i, v in enumerate(values) if not is_list[i] and v is not None)
        raise DataError(f"{path}: the {label_column!r} of {audio[is_list.index(True)]} is a JSON list but that of "
                        f"{audio[odd]} is {json.dumps(values[odd])}; write every clip's labels the same way "
                        '(lists such as ["dog", "siren"] and [] for none, or strings such as "dog;siren")')
    nested = next((i for i, v in enumerate(values) if is_list[i] and any(isinstance(x, (list, dict)) for x in v)), None)
    if nested is not None:
        raise DataError(f"{path}: the {label_column!r} of {audio[nested]} holds a list or object inside its list "
                        f"({json.dumps(values[nested])}); a clip's labels are a flat list of strings")
