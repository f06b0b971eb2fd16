"""Reading a CSV/TSV/JSONL manifest as users write them: every value a string exactly as written.

Type inference would turn the label `0012` into `12` and `007` into `7`, so CSV/TSV cells are read with
`dtype=str` (and an empty cell stays an empty string, never NaN). The dialects users have work as they
are: a UTF-8 byte-order mark (Excel), CRLF or old-Mac CR line ends, quoted cells with commas, `;` or tab as the
separator of a .csv (`data.csv_dialect`), Excel's `sep=;` first line, UTF-16 with its byte-order mark (Excel's "Unicode
Text"), trailing empty cells. In JSON(L), a fraction is read as the text it is written as (`1.50` stays `1.50`);
integers, `true`/`false` and `null` stay JSON values (a label `7` is `"7"`, `true` is `True`, `null` no label). A
file that is not UTF-8 (Latin-1, Windows-1252), a JSONL line that is not a JSON object, or a ragged row stops
with a `DataError` naming the file, the line and what to change. A path cell names a file by one rule for every
command (`resolve_listed_path`, from `manifest_folder`).
"""

from __future__ import annotations

import ast
import codecs
import csv
import io
import json
import logging
import os
import re
import tokenize
from pathlib import Path
from typing import Any, Optional

from hfspeech.data.csv_dialect import LINE_END, separator, trimmed
from hfspeech.data.file_names import existing_spelling
from hfspeech.errors import DataError

logger = logging.getLogger("hfspeech.data")
MANIFEST_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}
# JSON fractions as their text: the label `1.50` stays `1.50` (not `1.5`), `1e3` is not `1000.0`. Integers stay
# numbers (their text is `str()`'s: `7` is the label `"7"`), so that messages can say a cell is a number.
AS_WRITTEN = dict(parse_float=str, parse_constant=str)
WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]|^\\\\")  # `C:\data\a.wav`, `\\server\share\a.wav`
SAVE_AS_CSV = "in Excel: File › Save As › CSV UTF-8 (Comma delimited)"


class ManifestError(DataError):
    """A manifest that cannot be read as given; the message names the file (and line) and what to change."""


def read_manifest(path: str) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows, column names) of a manifest; `ManifestError` for anything that cannot be read."""
    manifest = Path(path)
    if not manifest.is_file():
        raise ManifestError(f"{path}: manifest file not found")
    kind = MANIFEST_FORMATS.get(manifest.suffix.lower())
    if kind is None:
        raise ManifestError(f"{path}: unknown manifest format '{manifest.suffix}' (use .csv, .tsv, .json or .jsonl)"
                            f"{_format_hint(manifest.suffix)}")
    text = _decoded(path, manifest.read_bytes())
    rows, columns = (_read_json(path, text) if kind == "json" else
                     _read_delimited(path, text, "\t" if manifest.suffix.lower() == ".tsv" else None))
    if not rows:
        raise ManifestError(f"{path}: manifest has no rows")
    return rows, columns


def _format_hint(suffix: str) -> str:
    """What to do with a spreadsheet's own formats; Excel's "Unicode Text" is a tab-separated .txt."""
    if suffix.lower() in (".xlsx", ".xls", ".xlsm", ".ods", ".numbers"):
        return f"; a spreadsheet is read as CSV: save it {SAVE_AS_CSV}"
    return "; a tab-separated .txt (Excel's Unicode Text) reads as .tsv: rename it" if suffix.lower() == ".txt" else ""


def _decoded(path: str, data: bytes) -> str:
    """The manifest's text: UTF-16 by its byte-order mark (Excel's "Unicode Text", which was refused as Latin-1),
    else UTF-8 with or without one; anything else is a `ManifestError` naming the byte and Excel's way out."""
    try:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return data.decode("utf-16")  # the mark tells the byte order, and is dropped
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ManifestError(f"{path}: not UTF-8 text (byte {error.object[error.start]:#x} at offset {error.start}, "
                            f"e.g. Latin-1 or Windows-1252): save it as UTF-8 ({SAVE_AS_CSV})") from None


def _read_delimited(path: str, text: str, delimiter: str | None) -> tuple[list[dict], list[str]]:
    if delimiter is None:
        delimiter, text = separator(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        table = [row for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as error:
        raise ManifestError(f"{path}: line {reader.line_num}: cannot be read as CSV ({error})") from None
    if not table:
        return [], []
    columns = _column_names(path, table[0], max(len(trimmed(row)) for row in table))
    rows = []
    for row, cells in enumerate(table[1:], start=1):  # data rows from 1, as every manifest error counts them
        if len(cells) > len(columns) and not any(cell.strip() for cell in cells[len(columns):]):
            cells = cells[:len(columns)]  # a spreadsheet's trailing empty cells (`a,b,,`)
        if len(cells) != len(columns):
            raise ManifestError(f"{path}: row {row} has {len(cells)} cells but the header has {len(columns)} "
                                f"({columns}); quote cells that contain {delimiter!r}")
        rows.append(dict(zip(columns, cells)))
    return rows, columns


def _column_names(path: str, header: list[str], width: int) -> list[str]:
    """Header cells stripped, trailing empty ones dropped where no row has a value in their column (`width`: the
    table's cells, `_trimmed`); a trailing unnamed column with values (`path,label,` over `a.wav,dog,note1`) is
    kept, as the column '', not refused. A byte-order mark (U+FEFF) left at the start of a cell (a file saved with
    two) is removed and named: the column `path` was missing beside a column '\\ufeffpath'."""
    columns = [name.strip() for name in header[:max(width, len(trimmed(header)))]]
    if marked := [name for name in columns if name.startswith("\ufeff")]:
        logger.warning("%s: header cell %r starts with a byte-order mark (U+FEFF, written twice), read as %r", path,
                       marked[0], marked[0].lstrip("\ufeff").strip())
    return [name.lstrip("\ufeff").strip() for name in columns]


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


def bracketed_cell(text: str) -> bool:
    """Whether a cell is written in brackets, as a list is (`list_cell`), whether or not it is one."""
    text = text.strip()
    return text.startswith("[") and text.endswith("]")


def list_cell(text: str) -> Optional[list[str]]:
    """A cell written as a list of strings -- JSON (`["dog", "siren"]`) or Python's repr, which pandas' `to_csv`
    writes for a list column (`['dog', 'siren']`) -- as that list; None for other text (`[noise]` is a label).
    Its labels may hold any separator (`["glass, breaking"]`): the list is read whole, as a JSONL list is."""
    if not bracketed_cell(text):
        return None
    for parse in (json.loads, ast.literal_eval):  # literal_eval: literals only, never code
        try:
            value = parse(text.strip())
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None
        return value if parse is json.loads or _string_tokens(text) == len(value) else None
    return None


def _string_tokens(text: str) -> int:
    """How many string literals `text` holds: Python joins adjacent ones, so `["dog" "siren"]` (a comma left out)
    read as the one label 'dogsiren'."""
    try:
        return sum(token.type == tokenize.STRING for token in tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return -1


def manifest_folder(path: str | os.PathLike) -> Path:
    """The folder a manifest's relative paths start from: the manifest's own, or for a link to a manifest the
    folder of the file it points to, as `hfspeech train` and `evaluate` read them (they resolve the manifest's
    path). `predict --manifest` read a linked manifest's rows beside the link, and found none of its files."""
    return Path(os.path.realpath(path)).parent if os.path.islink(path) else Path(path).parent


def absolute_manifest_folder(path: str | os.PathLike) -> Path:
    """`manifest_folder` as an absolute path, for train and cross-validate (their rows' files stay found wherever
    the run goes on): `..` folded away when the folded path is the same folder (`train --train_file ../data/a.csv`
    names `/work/data/x.wav`, not `/work/run/../data/x.wav`), kept after a link (`link/..` is the parent of the
    link's target, not the folder holding the link). A linked folder keeps the name the user gave it, as predict."""
    return absolute_folder(manifest_folder(path))


def absolute_folder(folder: str | os.PathLike) -> Path:
    """`folder` as an absolute path, the same for `data`, `/home/me/data` or `../me/data` run from elsewhere (one
    cache key for an audio folder, `data.loading`): `..` folded where that is the same folder, kept after a link
    (`link/..` is the parent of its target), and a linked folder keeps its own name (not `realpath`)."""
    folded = os.path.abspath(folder)
    return Path(folded) if os.path.realpath(folded) == os.path.realpath(folder) else Path(folder).absolute()


def resolve_listed_path(value, base: Path) -> str:
    """A manifest's path cell as a path on this machine: relative to `base` (`manifest_folder`); Windows `\\`
    separators of a relative path read as `/` when the path does not exist as written; a name in the other Unicode
    normalisation (NFC/NFD: macOS) than its file's read as the file's (`data.file_names.existing_spelling`).
    One rule for every command that reads a manifest: `predict --manifest` joined the cell as it was, so a
    manifest that trained (`..\\clips\\a.wav`, a macOS name, a cell with a trailing space) found no file."""
    text = "" if value is None else str(value).strip()
    full = existing_spelling(text, base)
    if "\\" in text and not os.path.lexists(full) and not (len(text) > 1 and text[1] == ":"):
        full = existing_spelling(text.replace("\\", "/"), base)
    return full


def manifest_files(manifest: str, path_column: str = "path") -> list[str]:
    """The files of a CSV/TSV or JSON(L) manifest's `path_column` (`hfspeech predict --manifest`), read as
    `hfspeech train` reads them (`read_manifest`: Excel's byte-order mark, `;`-separated CSV, a JSON list ...;
    `resolve_listed_path`). A row without a path is an error naming it: an empty cell became the manifest's
    folder ("is a folder"), a line that is not JSON an error naming neither file nor line. A JSON number is the
    file its text names (`12345`), as train reads it (`resolve_listed_path`): predict refused that row."""
    suffix = Path(manifest).suffix.lower()
    if suffix not in MANIFEST_FORMATS:  # before "not found": `files.txt` is wrong whether or not it exists
        raise ManifestError(f"{manifest}: a manifest is .csv, .tsv or .jsonl (or .json), "
                            f"not {suffix or 'extensionless'}{_format_hint(suffix)}")
    rows, columns = read_manifest(manifest)
    path_column = column_named(manifest, columns, path_column)
    if path_column not in columns:
        raise ManifestError(f"{manifest}: no {path_column!r} column (columns: {sorted(columns)}); "
                            "name the column with --path_column")
    cells = [_path_text(row.get(path_column)) for row in rows]
    for number, (row, cell) in enumerate(zip(rows, cells), 1):
        if not cell.strip():
            raise ManifestError(f"{manifest}: row {number} has no {path_column!r} (got {row.get(path_column)!r})")
    return listed_files(manifest, cells, manifest_folder(manifest))


def _path_text(value) -> str:
    """A path cell as text: a string as it is, a JSON number as its text (fractions are text already, `AS_WRITTEN`);
    `true`, `null`, a list or an object name no file, and read as empty."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return ""
    return str(value)


def column_named(path: str, columns: list[str], wanted: str) -> str:
    """`wanted`, or the one column that differs from it only in letter case (Excel's `Path`, `Label`), said once:
    a manifest whose header was capitalised stopped on "missing column 'path'" beside a column 'Path'."""
    alike = [name for name in columns if name.casefold() == wanted.casefold()]
    if wanted in columns or len(alike) != 1:
        return wanted
    logger.info("%s: column %r read as the %r column (letter case aside)", path, alike[0], wanted)
    return alike[0]


def listed_files(manifest: str, cells: list[str], base: Path) -> list[str]:
    """Each row's file (`resolve_listed_path`); a `ManifestError` when no row's file is in the manifest's folder
    but some are in the current one: the paths were written relative to where the command runs, and each file
    failed alone as "file not found" (thousands of lines for thousands of rows) without saying relative to what.
    When some rows are found, the missing ones are missing (a deleted file, with a copy of the data as the current
    folder: predict names it and scores the rest). `cells`: the rows' path cells; `base`: `manifest_folder`."""
    files = [resolve_listed_path(cell, base) for cell in cells]
    if any(os.path.lexists(file) for file in files):
        return files
    drive = next((cell.strip() for cell in cells if WINDOWS_DRIVE.match(cell.strip())), None)
    if drive is not None:  # one line, not one "not found" per row naming `folder/C:\\data\\a.wav`
        raise ManifestError(f"{manifest}: no listed file exists; rows name Windows paths such as {drive!r}: give them "
                            "relative to the manifest's folder")
    if os.path.abspath(base) == os.getcwd():
        return files
    for number, cell in enumerate(cells, 1):
        if os.path.lexists(resolve_listed_path(cell, Path())):
            raise ManifestError(f"{manifest}: row {number}'s {cell.strip()!r} is not in the manifest's folder "
                                f"({base}) but is in the current folder: a manifest's relative paths start from "
                                "its own folder; write them so, or absolute")
    return files
