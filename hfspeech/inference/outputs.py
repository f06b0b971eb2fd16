"""`hfspeech predict` over many files: which files (paths, folders, a manifest), and results written to a
JSONL or CSV file as each file is done, so that a run that stops (Ctrl-C, a crash, a full disk) resumes
where it stopped: files already in the output are skipped, the rest appended.

JSONL rows are `Prediction.to_dict()`, the objects `predict --json` prints. CSV rows have one column per
field (`labels`, `scores` and `active_labels` joined with `|`).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Optional, Sequence

from hfspeech.data.audio import find_audio_files

OUTPUT_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}
CSV_COLUMNS = ["path", "label", "score", "labels", "scores", "num_windows", "aggregate", "active_labels"]
MANIFEST_PATH_COLUMN = "path"


def expand_inputs(inputs: Sequence[str], manifest: Optional[str] = None,
                  path_column: str = MANIFEST_PATH_COLUMN) -> list[str]:
    """The audio files to classify: each input as given, or every audio file under it if it is a folder,
    then the manifest's paths (relative to the manifest's folder). A folder without audio files stays in the
    list as itself, so that it is reported ("is a folder") instead of vanishing."""
    files: list[str] = []
    for item in inputs:
        found = find_audio_files(item) if os.path.isdir(item) else []
        files += [str(p) for p in found] or [item]
    if manifest:
        files += manifest_paths(manifest, path_column)
    return files


def manifest_paths(manifest: str, path_column: str = MANIFEST_PATH_COLUMN) -> list[str]:
    """The `path_column` of a CSV/TSV or JSONL manifest (the format `hfspeech train` reads)."""
    folder = Path(manifest).parent
    suffix = Path(manifest).suffix.lower()
    if suffix not in (".csv", ".tsv", ".jsonl", ".json"):
        raise ValueError(f"{manifest}: a manifest is .csv, .tsv or .jsonl, not {suffix or 'extensionless'}")
    if not os.path.isfile(manifest):
        raise ValueError(f"{manifest}: no such manifest file")
    with open(manifest, newline="", encoding="utf-8") as f:
        if suffix in (".csv", ".tsv"):
            rows = list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","))
        else:
            rows = [json.loads(line) for line in f if line.strip()]
    if rows and path_column not in rows[0]:
        raise ValueError(f"{manifest}: no {path_column!r} column (columns: {sorted(rows[0])})")
    return [str(folder / row[path_column]) for row in rows]


def output_format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(f"{path}: --output must end in .jsonl or .csv, not {suffix or 'nothing'}")
    return OUTPUT_FORMATS[suffix]


def done_paths(path: str) -> set[str]:
    """Paths already written to an earlier run's output; a last row cut off mid-write is removed from the
    file (it is incomplete, so its file is classified again). A file that is not such an output (another
    header, a line that is no prediction row) is refused before anything in it changes."""
    kind = output_format(path)
    if os.path.isdir(path):
        raise ValueError(f"{path}: --output is a folder; give a .jsonl or .csv file")
    if not os.path.isfile(path):
        return set()
    with open(path, "rb+") as f:
        data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        if data and not complete:
            raise ValueError(f"{path}: not the output of an earlier `hfspeech predict` (no complete line); "
                             "give a new --output file")
        paths = _written_paths(path, kind, complete.decode("utf-8", errors="replace").splitlines())
        f.truncate(len(complete))
    return paths


def _written_paths(path: str, kind: str, lines: list[str]) -> set[str]:
    """The `path` of every row of an earlier output, or a ValueError naming the first line that is not a row."""
    problem = f"{path}: not the output of an earlier `hfspeech predict` (%s); give a new --output file"
    if kind == "csv":
        if lines and next(csv.reader(lines[:1])) != CSV_COLUMNS:
            raise ValueError(problem % f"its header is not {','.join(CSV_COLUMNS)}")
        return {row["path"] for row in csv.DictReader(lines) if row.get("path")}
    paths = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict) or "path" not in row:
            raise ValueError(problem % f"line {number} is not a prediction row")
        paths.add(row["path"])
    return paths


class PredictionWriter:
    """Appends one row per prediction to a JSONL or CSV file, flushed at once (a header for a new CSV)."""

    def __init__(self, path: str):
        self.format = output_format(path)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        new = not os.path.isfile(path) or os.path.getsize(path) == 0
        self.file = open(path, "a", newline="", encoding="utf-8")
        self.csv = csv.DictWriter(self.file, CSV_COLUMNS) if self.format == "csv" else None
        if self.csv is not None and new:
            self.csv.writeheader()

    def write(self, prediction) -> None:
        row = prediction.to_dict()
        if self.csv is None:
            self.file.write(json.dumps(row) + "\n")
        else:
            self.csv.writerow({"path": row["path"], "label": prediction.labels[0], "score": prediction.scores[0],
                               "labels": "|".join(prediction.labels),
                               "scores": "|".join(f"{s:.6g}" for s in prediction.scores),
                               "num_windows": row["num_windows"], "aggregate": row["aggregate"],
                               "active_labels": "|".join(row["active_labels"])})
        self.file.flush()

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> "PredictionWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
