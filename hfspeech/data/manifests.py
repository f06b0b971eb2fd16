"""Reading a CSV/TSV/JSONL manifest as users write them: every value a string exactly as written.

Type inference would turn the label `0012` into `12` and `007` into `7`, so CSV/TSV cells are read with
`dtype=str` (and an empty cell stays an empty string, never NaN). The dialects users have work as they
are: a UTF-8 byte-order mark (Excel), CRLF or old-Mac CR line ends, quoted cells with commas, `;`-separated CSV
(spreadsheets in many locales: detected from the header line). In JSON(L), a fraction is read as the text it
is written as (`1.50` stays `1.50`, not `1.5`); integers, `true`/`false` and `null` stay JSON values (a label
`7` is `"7"`, `true` is `True`, `null` no label). A file that is not UTF-8 (Latin-1,
Windows-1252), a JSONL line that is not a JSON object, or a ragged row stops with a `DataError` naming the
file, the line and what to change.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hfspeech.errors import DataError

MANIFEST_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}
# JSON fractions as their text: the label `1.50` stays `1.50` (not `1.5`), `1e3` is not `1000.0`. Integers stay
# numbers (their text is `str()`'s: `7` is the label `"7"`), so that messages can say a cell is a number.
AS_WRITTEN = dict(parse_float=str, parse_constant=str)
# Lines end at `\r\n`, `\r` (old Mac) or `\n`, as Python's universal newlines and pandas read them, and nowhere else:
# `str.splitlines` also splits inside a string holding U+2028, U+2029 or U+0085, which JSON allows unescaped
# (`json.dumps(..., ensure_ascii=False)` writes them so), and a valid line was refused as "not valid JSON"; splitting
# at `\n` alone refused a `\r`-only file at line 1. No JSON string holds a raw `\r` or `\n` (they must be escaped).
LINE_END = re.compile(r"\r\n|\r|\n")


class ManifestError(DataError):
    """A manifest that cannot be read as given; the message names the file (and line) and what to change."""


def read_manifest(path: str) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows, column names) of a manifest; `ManifestError` for anything that cannot be read."""
    manifest = Path(path)
    if not manifest.is_file():
        raise ManifestError(f"{path}: manifest file not found")
    kind = MANIFEST_FORMATS.get(manifest.suffix.lower())
    if kind is None:
        raise ManifestError(f"{path}: unknown manifest format '{manifest.suffix}' (use .csv, .tsv, .json or .jsonl)")
    try:
        text = manifest.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ManifestError(f"{path}: not UTF-8 text (byte {error.object[error.start]:#x} at offset {error.start}, "
                            "e.g. Latin-1 or Windows-1252): save it as UTF-8") from None
    rows, columns = (_read_json(path, text) if kind == "json" else
                     _read_delimited(path, text, "\t" if manifest.suffix.lower() == ".tsv" else None))
    if not rows:
        raise ManifestError(f"{path}: manifest has no rows")
    return rows, columns


def _read_delimited(path: str, text: str, delimiter: str | None) -> tuple[list[dict], list[str]]:
    import csv
    import io

    header = LINE_END.split(text, maxsplit=1)[0] if text.strip() else ""
    if delimiter is None:  # `;` only when the header has no comma: a `;` inside a cell is a multi-label list
        delimiter = ";" if ";" in header and "," not in header else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        table = [row for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as error:
        raise ManifestError(f"{path}: line {reader.line_num}: cannot be read as CSV ({error})") from None
    if not table:
        return [], []
    columns = [name.strip() for name in table[0]]
    rows = []
    for line, cells in enumerate(table[1:], start=2):
        if len(cells) != len(columns):
            raise ManifestError(f"{path}: row {line} has {len(cells)} cells but the header has {len(columns)} "
                                f"({columns}); quote cells that contain {delimiter!r}")
        rows.append(dict(zip(columns, cells)))
    return rows, columns


def _read_json(path: str, text: str) -> tuple[list[dict], list[str]]:
    stripped = text.lstrip()
    if stripped.startswith("["):  # a .json file holding one list of objects
        try:
            records = json.loads(stripped, **AS_WRITTEN)
        except json.JSONDecodeError as error:
            raise ManifestError(f"{path}: not valid JSON ({error})") from None
        numbered = list(enumerate(records, start=1))
    else:
        numbered = []
        for line, raw in enumerate(LINE_END.split(text), start=1):
            if not raw.strip():
                continue
            try:
                numbered.append((line, json.loads(raw, **AS_WRITTEN)))
            except json.JSONDecodeError as error:
                raise ManifestError(f"{path}: line {line} is not valid JSON ({error.msg}); each line must be one "
                                    'object such as {"path": "a.wav", "label": "yes"}') from None
    columns: dict[str, None] = {}
    for line, record in numbered:
        if not isinstance(record, dict):
            raise ManifestError(f"{path}: line {line} is not a JSON object ({type(record).__name__})")
        columns.update(dict.fromkeys(record))
    return [record for _, record in numbered], list(columns)
