"""`hfspeech predict --output -`: the rows `--output FILE` writes, on stdout instead, for a pipe into jq, awk or
csvkit (`hfspeech predict MODEL clips/ --output - --format csv | csvcut -c path,label`).

The rows are `PredictionWriter`'s (JSON lines, or CSV with the same header), one per file, flushed as each is
done. What a file has that stdout lacks is left out: there is nothing to resume, lock or cut back to whole rows.
CSV lines end in `\\n`, as text on stdout does, so `awk -F,` sees no `\\r` in the last column; the csv module
reads them back as it reads the file's `\\r\\n`.
"""

from __future__ import annotations

import csv
import sys
from typing import Optional, TextIO

from hfspeech.errors import stdout_write_errors
from hfspeech.inference.outputs import CSV_COLUMNS, PredictionWriter

STDOUT = "-"  # the --output that means stdout, as for cat, tar and curl
DEFAULT_STDOUT_FORMAT = "jsonl"  # `--output -` without --format: JSON lines, the rows --json prints


class StdoutPredictionWriter(PredictionWriter):
    """`PredictionWriter`'s rows on a text stream (stdout): a CSV header first, then a row per prediction.

    A reader that has gone (`| head -1`) raises `BrokenPipeError` from `write`, which `hfspeech.cli.main`
    ends quietly; nothing is retried or cut back, since nothing of a pipe can be taken back."""

    def __init__(self, kind: str = DEFAULT_STDOUT_FORMAT, stream: Optional[TextIO] = None, multi_label: bool = False):
        if kind not in ("jsonl", "csv"):
            raise ValueError(f"--format {kind}: rows on stdout are jsonl or csv")
        self.format, self.path, self.multi_label = kind, STDOUT, multi_label
        self.file = sys.stdout if stream is None else stream
        self.csv = csv.DictWriter(self.file, CSV_COLUMNS, lineterminator="\n") if kind == "csv" else None
        if self.csv is not None:
            with stdout_write_errors():
                self.csv.writeheader()
                self.file.flush()

    def written_paths(self) -> set[str]:
        return set()  # stdout is never resumed

    def write(self, prediction) -> None:
        with stdout_write_errors():
            self._write_row(prediction)
            self.file.flush()  # each row reaches the reader as its file is done, not when a buffer fills

    def close(self) -> None:
        self.file.flush()  # stdout stays open: the summary and Python's own exit still use it
