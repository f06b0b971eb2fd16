"""A file's windows over time: `write_timeline(prediction, classifier, out_dir)` -> JSON, CSV and a PNG.

The JSON holds every window (start, end, top labels and scores, active labels for a multi-label model) and
the full score matrix in label order; the CSV is the same table for a spreadsheet (one column per label);
the PNG is a heat map of every label's score over time (matplotlib, Agg backend: no display needed).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from hfspeech.errors import writing_to
from hfspeech.inference.classifier import AudioClassifier, Prediction
from hfspeech.inference.outputs import join_labels
from hfspeech.inference.plot_labels import drawable_class_names, drawable_text, glyph_warnings_silenced, tick_positions


def timeline_scores(prediction: Prediction, num_labels: int) -> np.ndarray:
    """`[windows, labels]` scores; NaN for windows the model did not see."""
    rows = [w.scores if w.scores is not None else np.full(num_labels, np.nan) for w in prediction.windows]
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, num_labels), dtype=np.float32)


def write_timeline(prediction: Prediction, classifier: AudioClassifier, out_dir: str | Path, stem: str,
                   top_k: int = 3) -> dict[str, Path]:
    """Write `OUT_DIR/STEM.timeline.{json,csv,png}`; returns their paths by kind. A full (or read-only) disk is one
    line naming OUT_DIR, and leaves none of the three (`_all_or_none`): a truncated PNG stayed, and the message
    named no path."""
    out = Path(out_dir)
    labels = [classifier.id2label[i] for i in range(len(classifier.id2label))]
    scores = timeline_scores(prediction, len(labels))
    stem = fitting_stem(stem)
    paths = {kind: out / f"{stem}.timeline.{kind}" for kind in ("json", "csv", "png")}
    with writing_to(out, f"the timeline of {Path(prediction.path).name} was not written; make room and run again"), \
            _all_or_none(paths):
        out.mkdir(parents=True, exist_ok=True)
        _write_tables(prediction, classifier, labels, scores, paths, top_k)
        plot_timeline(prediction, labels, scores, paths["png"])
    return paths


@contextlib.contextmanager
def _all_or_none(paths: dict[str, Path]):
    """Inside, a write that fails removes the files of `paths` (written in part, or whole but without the others)."""
    try:
        yield
    except BaseException:
        for path in paths.values():
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        raise


def _write_tables(prediction: Prediction, classifier: AudioClassifier, labels: list[str], scores: np.ndarray,
                  paths: dict[str, Path], top_k: int) -> None:
    """The timeline's JSON and CSV (`paths["json"]`, `paths["csv"]`)."""
    windows = [w.to_dict(classifier.id2label, top_k) for w in prediction.windows]
    document = {**prediction.to_dict(), "labels": labels, "windows": windows,
                "scores": [[None if np.isnan(v) else float(v) for v in row] for row in scores]}
    paths["json"].write_text(json.dumps(document, indent=1), encoding="utf-8")
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["start", "end", "top_label", "top_score", "active_labels", *labels])
        for window, row in zip(windows, scores):
            top_label, top_score = (window["labels"][0], f"{window['scores'][0]:.6f}") if window["labels"] else ("", "")
            active = join_labels(window["active_labels"], ";")  # a JSON list when a label holds the `;`
            writer.writerow([f"{window['start']:.6f}", f"{window['end']:.6f}", top_label, top_score,
                             active, *("" if np.isnan(v) else f"{v:.6f}" for v in row)])


NAME_MAX_BYTES = 255  # a name's limit in UTF-8 bytes on ext4, XFS, btrfs and APFS (NTFS: 255 UTF-16 units, more)
TIMELINE_SUFFIX_BYTES = len(".timeline.json")


def fitting_stem(stem: str) -> str:
    """`stem` when `<stem>.timeline.json` fits in a file name, else its start and `~` with 8 hex digits of the
    whole stem's digest: a clip named with 242 bytes or more stopped the run with a traceback ("File name too
    long") after its prediction. The digest keeps two long names with one start apart, the same in every run
    (a resumed run's timeline keeps its name); the JSON's `path` says which file it is."""
    encoded = os.fsencode(stem)
    budget = NAME_MAX_BYTES - TIMELINE_SUFFIX_BYTES
    if len(encoded) <= budget:
        return stem
    digest = hashlib.sha256(encoded).hexdigest()[:8]
    start = stem
    while len(os.fsencode(start)) > budget - len(digest) - 1:
        start = start[:-1]  # by characters, so a UTF-8 sequence is never cut in half
    return f"{start}~{digest}"


MAX_HEIGHT_INCHES = 24.0  # 2,400 pixels: a 500-class model's timeline was 17,620 pixels tall


def _name_labels(ax, names: list[str]) -> None:
    """Tick labels on the label axis: all of them, or every k-th (`plot_labels.tick_positions`; the JSON and CSV
    hold them all). `$5` is a label, not TeX (`$x^$` raised)."""
    positions, fontsize = tick_positions(len(names))
    ax.set_yticks(positions, [names[i] for i in positions], parse_math=False, fontsize=fontsize)


def plot_timeline(prediction: Prediction, labels: list[str], scores: np.ndarray, path: Path) -> None:
    from matplotlib.figure import Figure  # not pyplot: `matplotlib.use("Agg")` switched a notebook's backend

    starts = np.array([w.start for w in prediction.windows]) if prediction.windows else np.zeros(1)
    ends = np.array([w.end for w in prediction.windows]) if prediction.windows else np.ones(1)
    centres = (starts + ends) / 2
    fig = Figure(figsize=(10, min(1.2 + 0.35 * len(labels), MAX_HEIGHT_INCHES)))
    ax = fig.subplots()
    if len(scores):
        # One column per window, at its centre: overlapping windows share the time axis without gaps.
        edges = np.concatenate([[starts[0]], (centres[1:] + centres[:-1]) / 2, [ends[-1]]]) if len(centres) > 1 \
            else np.array([starts[0], ends[0]])
        image = ax.pcolormesh(edges, np.arange(len(labels) + 1) - 0.5, np.ma.masked_invalid(scores.T),
                              vmin=0.0, vmax=1.0, cmap="viridis", shading="flat")
        fig.colorbar(image, ax=ax, label="score", pad=0.01)
    _name_labels(ax, drawable_class_names(labels))
    ax.set_xlabel("time (s)")
    ax.set_title(drawable_text(f"{Path(prediction.path).name}: {prediction.num_windows} windows, top "
                               f"{prediction.labels[0]}"), parse_math=False)
    with glyph_warnings_silenced():  # a name drawn as boxes was told once, by `drawable_class_names`
        fig.tight_layout()
        fig.savefig(path, dpi=100)
