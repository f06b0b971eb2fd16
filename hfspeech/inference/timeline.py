"""A file's windows over time: `write_timeline(prediction, classifier, out_dir)` -> JSON, CSV and a PNG.

The JSON holds every window (start, end, top labels and scores, active labels for a multi-label model) and
the full score matrix in label order; the CSV is the same table for a spreadsheet (one column per label);
the PNG is a heat map of the labels' scores over time (matplotlib, Agg backend: no display needed): every label
up to `MAX_TIMELINE_ROWS`, past that only those some window ranked in its top k or found active
(`timeline_rows`), each named, and the title says how many were left out.
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
from hfspeech.inference.plot_labels import (MAX_TICK_LABELS, NAME_CHARS, drawable_class_names, drawable_text,
                                            figure_class, save_figure, short_names, tick_positions)
from hfspeech.inference.windows import finite_or_none


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
        plot_timeline(prediction, labels, scores, paths["png"], top_k)
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
                "scores": [[finite_or_none(float(v)) for v in row] for row in scores]}  # NaN: null, as JSON has
    paths["json"].write_text(json.dumps(document, indent=1, allow_nan=False), encoding="utf-8")
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["start", "end", "top_label", "top_score", "active_labels", *labels])
        for window, row in zip(windows, scores):
            top = window["scores"][0] if window["labels"] else None  # None: a skipped window, or a NaN score
            top_label = window["labels"][0] if window["labels"] else ""
            top_score = "" if top is None else f"{top:.6f}"
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
MAX_TIMELINE_ROWS = MAX_TICK_LABELS  # labels drawn, each named; past it, only those a window ranked high


def timeline_rows(prediction: Prediction, labels: list[str], scores: np.ndarray, top_k: int = 3) -> np.ndarray:
    """The label ids the PNG draws, in label order: all of them up to `MAX_TIMELINE_ROWS`; past that, those in some
    window's top `top_k` (the JSON's, up to ties) or active in one, the `MAX_TIMELINE_ROWS` of them with the
    highest peak score where more. A 1,000-label timeline was 2.4 pixels a label with every 17th named, and the
    few labels the file was about could not be told apart from the 990 that never scored."""
    if len(labels) <= MAX_TIMELINE_ROWS:
        return np.arange(len(labels))
    scored = scores[~np.isnan(scores).any(axis=1)]
    k = min(max(1, top_k), len(labels))
    ranked = np.argpartition(-scored, k - 1, axis=1)[:, :k]  # each window's top k, unordered: no full sort
    index = {label: i for i, label in enumerate(labels)}
    active = [index[label] for window in prediction.windows for label in window.active_labels if label in index]
    candidates = np.union1d(ranked.ravel(), np.asarray(active, dtype=np.int64))
    if len(candidates) > MAX_TIMELINE_ROWS:
        peaks = scored[:, candidates].max(axis=0)
        candidates = np.sort(candidates[np.argsort(-peaks, kind="stable")[:MAX_TIMELINE_ROWS]])
    return candidates.astype(np.int64)


def _name_labels(ax, names: list[str]) -> None:
    """Tick labels on the label axis: all of them, or every k-th (`plot_labels.tick_positions`; the JSON and CSV
    hold them all). `$5` is a label, not TeX (`$x^$` raised)."""
    positions, fontsize = tick_positions(len(names))
    ax.set_yticks(positions, [names[i] for i in positions], parse_math=False, fontsize=fontsize)


def plot_timeline(prediction: Prediction, labels: list[str], scores: np.ndarray, path: Path, top_k: int = 3) -> None:
    """`timeline_figure` saved as a PNG at 100 dpi."""
    save_figure(timeline_figure(prediction, labels, scores, top_k), path, dpi=100)


def timeline_figure(prediction: Prediction, labels: list[str], scores: np.ndarray, top_k: int = 3):
    """A heat map of the `timeline_rows` labels' scores, one column a window; the title says how many of the
    labels it leaves out."""
    Figure = figure_class()

    rows = timeline_rows(prediction, labels, scores, top_k)
    starts = np.array([w.start for w in prediction.windows]) if prediction.windows else np.zeros(1)
    ends = np.array([w.end for w in prediction.windows]) if prediction.windows else np.ones(1)
    centres = (starts + ends) / 2
    fig = Figure(figsize=(10, min(1.5 + 0.35 * len(rows), MAX_HEIGHT_INCHES)))
    ax = fig.subplots()
    if len(scores) and len(rows):
        # One column per window, at its centre: overlapping windows share the time axis without gaps.
        edges = np.concatenate([[starts[0]], (centres[1:] + centres[:-1]) / 2, [ends[-1]]]) if len(centres) > 1 \
            else np.array([starts[0], ends[0]])
        image = ax.pcolormesh(edges, np.arange(len(rows) + 1) - 0.5, np.ma.masked_invalid(scores[:, rows].T),
                              vmin=0.0, vmax=1.0, cmap="viridis", shading="flat")
        fig.colorbar(image, ax=ax, label="score", pad=0.01)
    shown = short_names(drawable_class_names(labels))
    _name_labels(ax, [shown[i] for i in rows])
    ax.set_xlabel("time (s)")
    top = short_names([prediction.labels[0]], limit=2 * NAME_CHARS)[0]
    lines = [f"{Path(prediction.path).name}: {prediction.num_windows} windows, top {top}"]
    if len(rows) < len(labels):
        lines.append(f"{len(rows)} of {len(labels)} labels drawn (in a window's top {max(1, top_k)} or active; at "
                     f"most {MAX_TIMELINE_ROWS}, by peak score): the JSON and CSV hold all")
    ax.set_title("\n".join(drawable_text(line) for line in lines), parse_math=False, fontsize=10)
    return fig

