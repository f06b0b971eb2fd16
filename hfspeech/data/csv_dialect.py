"""Which separator a .csv uses (`,`, `;` or tab), read from its first rows as spreadsheets in other locales write
them (`data.manifests.read_manifest`): Excel in a comma-decimal locale writes `;`, some tools write tabs into a .csv,
and Excel's own `sep=;` first line says which."""

from __future__ import annotations

import csv
import io
import itertools
import re

# Lines end at `\r\n`, `\r` (old Mac) or `\n`, as universal newlines read them, and nowhere else: `str.splitlines` also
# split inside a JSON string holding U+2028, U+2029 or U+0085 (allowed unescaped); `\n` alone missed `\r`-only files.
LINE_END = re.compile(r"\r\n|\r|\n")
SEPARATOR_LINE = re.compile(r'^"?sep=(.)"?[,;\t]*$', re.IGNORECASE)  # Excel's `sep=;` line, for Excel alone
USUAL_COLUMNS = {"path", "file", "filename", "audio", "label", "labels"}  # what a header is likely to name


def separator(text: str) -> tuple[str, str]:
    """(separator, text without Excel's `sep=X` line) of a .csv: of `,` `;` tab, the one giving every first row the
    table's cell count (trailing empty cells aside), the most cells first. The header alone chose wrongly: a
    tab-separated .csv was one column, a `;` file with a comma in a header cell ("duration (s, approx)") two.
    A tie (`path;labels (dog, cat)` over `a.wav;dog,siren`) goes to `_header_fit`."""
    first, *rest = LINE_END.split(text, maxsplit=1)
    if (named := SEPARATOR_LINE.match(first.strip(" "))) is not None:  # not strip(): `sep=<tab>` is a tab
        return named.group(1), "".join(rest)

    def fit(delimiter: str) -> tuple[bool, int, int, bool]:
        rows = [row for row in itertools.islice(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), 200)
                if any(cell.strip() for cell in row)]
        width = max((len(trimmed(row)) for row in rows), default=0)
        return (width > 1 and all(len(row) >= width for row in rows), width, *_header_fit(rows[0] if rows else []))
    try:
        return max((",", ";", "\t"), key=fit), text
    except csv.Error:  # an unclosed quote: read at "," and named with its line below
        return ",", text


def _header_fit(header: list[str]) -> tuple[int, bool]:
    """How like a header a split of the first row is, for a tie: minus the other separators glued inside its cells
    (`path;labels`: a separator; `dog, cat`, followed by a space, is prose), then whether a cell is a usual column
    name. A `;` file with `(dog, cat)` in a header cell read at `,`; `path,labels;tags` must stay at `,`."""
    glued = sum(len(re.findall(r"[,;\t](?=\S)", cell.strip())) for cell in header)
    return -glued, any(cell.strip().casefold() in USUAL_COLUMNS for cell in header)


def trimmed(cells: list[str]) -> list[str]:
    """A row without its trailing empty cells, which spreadsheets add after a formatted column (`a,b,,`)."""
    end = next((i for i in range(len(cells), 1, -1) if cells[i - 1].strip()), 1)  # not a loop of copies: 16k cells
    return cells[:end]
