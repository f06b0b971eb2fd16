"""`hfspeech predict` over many files: which files (paths, folders, a manifest), and results written to a
JSONL or CSV file as each file is done, so that a run that stops (Ctrl-C, a crash, a full disk) resumes
where it stopped: files already in the output are skipped, the rest appended.

JSONL rows are `Prediction.to_dict()`, the objects `predict --json` prints. CSV rows have one column per field
(`labels`, `scores` and `active_labels` joined with `|`, or a JSON list when a label holds the `|`). An earlier
output is resumed only by the same model: its rows' labels must all be this model's labels."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import io
import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Optional, Sequence

from hfspeech.data.audio import AUDIO_EXTENSIONS
from hfspeech.data.folders import walk_audio_files
from hfspeech.data.manifests import manifest_files
from hfspeech.errors import UsageError, cannot_write
from hfspeech.output_folders import file_in_the_way, held_by_this_process

OUTPUT_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}
CSV_COLUMNS = ["path", "label", "score", "labels", "scores", "num_windows", "aggregate", "active_labels"]
MANIFEST_PATH_COLUMN = "path"
logger = logging.getLogger(__name__)


def expand_inputs(inputs: Sequence[str], manifest: Optional[str] = None,
                  path_column: str = MANIFEST_PATH_COLUMN) -> list[str]:
    """The audio files to classify: each input as given, or every audio file under it if it is a folder (or
    matched by it if it is a glob pattern the shell left alone, `"data/**/*.wav"`), then the manifest's paths
    (read as `hfspeech train` reads them: `data.manifests.manifest_files`). A folder or pattern without audio
    files stays in the list as itself, so that it is reported instead of vanishing.

    Folders are listed as `hfspeech train` lists them (`data.folders.walk_audio_files`): links to folders
    followed, hidden files (`._x.wav` macOS forks, which are not audio) and other extensions left out, and
    how many were left out is logged. `rglob` before kept the forks (each failed the run) and skipped
    linked folders without a word."""
    files: list[str] = []
    for item in inputs:
        found = _folder_files(item) if os.path.isdir(item) else _matches(item)
        files += found or [item]
    if manifest:
        files += manifest_files(manifest, path_column)
    return files


def _folder_files(folder: str) -> list[str]:
    audio, ignored = walk_audio_files(Path(folder))
    if ignored:
        reasons = Counter(entry["reason"] for entry in ignored)
        logger.warning("note: %s: %d file(s) left out: %s", folder, len(ignored),
                       "; ".join(f"{count} {reason}" for reason, count in sorted(reasons.items())))
    return [path for _, path in audio]


def _matches(pattern: str) -> list[str]:
    """The audio files (by extension) a glob pattern matches, sorted, for a pattern that is no file. Only files,
    as datasets' `data_files` patterns: `data/**/*` matches folders too, and listing them as well would
    classify their files twice; `*` leaves hidden files out, as a folder's listing does."""
    if os.path.lexists(pattern) or not any(char in pattern for char in "*?["):
        return []
    return [match for match in sorted(glob.glob(pattern, recursive=True))
            if Path(match).suffix.lower() in AUDIO_EXTENSIONS and not os.path.isdir(match)]


def with_every_active_label(prediction, top_k: int):
    """`prediction` (every label ranked, best first) cut to its `top_k` best labels and every active label below
    them, still best first: a label's threshold can sit under another's score, and the top k alone left out labels
    active for the file (`alarm` 0.192, threshold 0.161, sixth of 6). predict's rows and serve's answers use it."""
    keep = [i for i, label in enumerate(prediction.labels) if i < top_k or label in prediction.active_labels]
    return dataclasses.replace(prediction, labels=[prediction.labels[i] for i in keep],
                               scores=[prediction.scores[i] for i in keep])


def output_format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(f"{path}: --output must end in .jsonl or .csv, not {suffix or 'nothing'}")
    return OUTPUT_FORMATS[suffix]


def read_earlier_output(path: str) -> tuple[set[str], set[str]]:
    """The paths and the labels of an earlier run's output; a last row cut off mid-write is removed from the
    file (it is incomplete, so its file is classified again). A file that is not such an output (another
    header, a line that is no prediction row) is refused before anything in it changes."""
    kind = output_format(path)
    if os.path.isdir(path):
        raise ValueError(f"{path}: --output is a folder; give a .jsonl or .csv file")
    if not os.path.isfile(path):
        blocker = file_in_the_way(path)  # before the model loads
        if blocker is not None:
            raise ValueError(f"{path}: --output is inside {blocker}, a file, not a folder; give another --output file")
        return set(), set()
    with _open_output(path, "rb+") as f:
        _lock_or_refuse(f, path)  # before cutting a last row that another run may be writing
        data = f.read()
        complete, rows = _complete_rows(path, kind, data)
        if data and not complete:
            raise ValueError(f"{path}: not the output of an earlier `hfspeech predict` (no complete line); "
                             "give a new --output file")
        f.truncate(len(complete))
    return {row_path for row_path, _ in rows}, {label for _, labels in rows for label in labels}


def _complete_rows(path: str, kind: str, data: bytes) -> tuple[bytes, list[tuple[str, list[str]]]]:
    """(the bytes up to the last row end, the rows they hold) of an output file's `data`: a last row cut off
    mid-write is not a row (a CSV row cut after a line break in its quoted path: not its first line either)."""
    complete = data[:_last_csv_row_end(path, data) if kind == "csv" else data.rfind(b"\n") + 1]
    return complete, _written_rows(path, kind, complete.decode("utf-8", errors="replace"))


def _last_csv_row_end(path: str, data: bytes) -> int:
    """The offset after the last line end outside quotes, in one forward pass. More than two lines after it are an
    unclosed quote further up (a hand edit), not a row cut mid-write: refused (cutting deleted the rows after it)."""
    end = offset = quotes = 0
    for line in data.split(b"\n")[:-1]:  # the piece after the last line end has none
        offset += len(line) + 1
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            end = offset
    if (lines := data.count(b"\n", end)) > 2:  # a cut row: its first line, and one more if its path holds a break
        raise ValueError(f"{path}: an unclosed quote before its last {lines} lines: not cut; mend it, or give a new "
                         "--output file")
    return end


def check_same_model(path: str, written_labels: set[str], model_labels, model: str) -> None:
    """Refuse to append to an output whose rows name labels this model does not have: they were written by
    another model, and resuming used to mix two models' predictions in one file without a word. Pieces of
    a label holding `|` pass too: CSV cells written before such labels became JSON lists were split there."""
    allowed = set(model_labels) | {piece for label in model_labels for piece in label.split("|")}
    foreign = sorted(written_labels - allowed)
    if foreign:
        shown = ", ".join(repr(label) for label in foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        raise ValueError(f"{path}: written by another model (labels {shown} are not labels of {model}); "
                         f"give a new --output file, or delete {path} to start over")


def same_file(path: str) -> str:
    """What a path is matched by on resume: absolute (from the current folder) and normalised as `abspath`
    does, so `./a.wav`, `a.wav` and its absolute path are one file (before, each was a different file and
    was classified again). Links are not resolved: two links to one file stay two files."""
    return os.path.abspath(path)


def join_labels(labels: Sequence[str], separator: str = "|") -> str:
    """Labels in one CSV cell: joined with `separator`, or a JSON list when a label holds the separator (or
    starts like a JSON list), so that the cell splits back into the labels it was made of."""
    if any(separator in label or label.startswith("[") for label in labels):
        return json.dumps(list(labels), ensure_ascii=False)
    return separator.join(labels)


def split_labels(cell: str, separator: str = "|") -> list[str]:
    """`join_labels` undone (cells written before JSON lists were written split at the separator)."""
    if cell.startswith("["):
        with contextlib.suppress(ValueError):
            labels = json.loads(cell)
            if isinstance(labels, list) and all(isinstance(label, str) for label in labels):
                return labels
    return cell.split(separator) if cell else []


def _written_rows(path: str, kind: str, text: str) -> list[tuple[str, list[str]]]:
    """The `path` and labels of every row of an earlier output, or a ValueError naming the first line that is
    not a row. CSV is parsed as CSV, not line by line: a path with a newline in it is one quoted field over
    two lines, which `splitlines` cut in two, so that file was never found done and was written again."""
    problem = f"{path}: not the output of an earlier `hfspeech predict` (%s); give a new --output file"
    if kind == "csv":
        rows = csv.reader(io.StringIO(text, newline=""))
        try:
            if text and next(rows, None) != CSV_COLUMNS:
                raise ValueError(problem % f"its header is not {','.join(CSV_COLUMNS)}")
            return [(row[0], _csv_row_labels(row)) for row in rows if row and row[0]]
        except csv.Error as error:  # a field over the csv module's size limit ...
            raise ValueError(problem % f"it cannot be read as CSV: {error}") from None
    written = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict) or "path" not in row:
            raise ValueError(problem % f"line {number} is not a prediction row")
        written.append((row["path"], _json_row_labels(row)))
    return written


def _csv_row_labels(row: list[str]) -> list[str]:
    cells = dict(zip(CSV_COLUMNS, row))
    labels = [cells.get("label", "")] + split_labels(cells.get("labels", "")) + \
        split_labels(cells.get("active_labels", ""))
    return [label for label in labels if label]


def _json_row_labels(row: dict) -> list[str]:
    predictions = row.get("predictions") if isinstance(row.get("predictions"), list) else []
    active = row.get("active_labels") if isinstance(row.get("active_labels"), list) else []
    labels = [p.get("label") for p in predictions if isinstance(p, dict)] + active
    return [label for label in labels if isinstance(label, str)]


def _open_output(path: str, mode: str):
    """`path` opened after making its folder. A read-only disk or folder, another user's, a full disk: one line
    naming --output (a bare errno before: `[Errno 30] Read-only file system` resuming a read-only output)."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return open(path, "rb+") if mode == "rb+" else open(path, mode, newline="", encoding="utf-8")
    except OSError as error:
        raise cannot_write(path, error, "make room, or give another --output file") from None


def _lock_or_refuse(file, path: str) -> None:
    """Hold `file` alone until it is closed: two runs appending to one output each classified the files the
    other had not written yet when it started, and every file they both did was in it twice."""
    if not held_by_this_process(file):
        file.close()
        raise UsageError(f"{path}: another `hfspeech predict` is writing to this --output file now; wait for it "
                         "to end (then run again to resume), or give another file")


def headline(prediction, multi_label: bool) -> tuple[str, object]:
    """A CSV row's `label` and `score`: the top label, or a multi-label model's best active one ('' and '' when
    none is active: a silent clip's row read `label=engine` beside empty `active_labels`)."""
    if not multi_label:
        return prediction.labels[0], prediction.scores[0]
    active = [pair for pair in zip(prediction.labels, prediction.scores) if pair[0] in prediction.active_labels]
    return active[0] if active else ("", "")


class PredictionWriter:
    """Appends one row per prediction to a JSONL or CSV file, flushed at once (a header for a new CSV).

    A row that cannot be written (a full disk, a drive gone read-only) is cut off the file, which then ends
    with the last whole row, and raises a one-line `OutputWriteError`: the same command run again resumes."""

    def __init__(self, path: str, multi_label: bool = False):
        self.format, self.path, self.multi_label = output_format(path), path, multi_label
        new = not os.path.isfile(path) or os.path.getsize(path) == 0
        self.file = _open_output(path, "a")
        _lock_or_refuse(self.file, path)
        self.complete = self.file.tell()  # bytes of whole rows in the file
        self.csv = csv.DictWriter(self.file, CSV_COLUMNS) if self.format == "csv" else None
        if self.csv is not None and new:
            self.csv.writeheader()

    def written_paths(self) -> set[str]:
        """The paths already in the file, read once this run holds it: a run that ended after this one first
        read it (before its model loaded) wrote rows this one must not write again (every file was twice)."""
        with open(self.path, "rb") as f:
            return {row_path for row_path, _ in _complete_rows(self.path, self.format, f.read())[1]}

    def write(self, prediction) -> None:
        try:
            self._write_row(prediction)
            self.file.flush()
        except OSError as error:
            self._cut_to_complete_rows()
            raise cannot_write(self.path, error, "the rows written before are kept; make room and run the same "
                               "command again to resume") from None
        self.complete = self.file.tell()

    def _cut_to_complete_rows(self) -> None:
        """Drop what a failed write left in the buffer and on disk after the last whole row."""
        with contextlib.suppress(OSError):
            self.file.close()  # flushes the rest of the buffer, which fails again: nothing is kept of it
        with contextlib.suppress(OSError):
            os.truncate(self.path, self.complete)

    def _write_row(self, prediction) -> None:
        row = prediction.to_dict()
        if self.csv is None:
            self.file.write(json.dumps(row, allow_nan=False) + "\n")  # NaN scores are null (`Prediction.to_dict`)
        else:
            label, score = headline(prediction, self.multi_label)
            self.csv.writerow({"path": row["path"], "label": label, "score": score,
                               "labels": join_labels(prediction.labels),
                               "scores": "|".join(f"{s:.6g}" for s in prediction.scores),
                               "num_windows": row["num_windows"], "aggregate": row["aggregate"],
                               "active_labels": join_labels(row["active_labels"])})

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> "PredictionWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
