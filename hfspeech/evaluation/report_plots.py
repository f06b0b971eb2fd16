"""The report figures: a confusion matrix (single-label) and per-class AP and F1 bars (multi-label), drawn on a
matplotlib `Figure` (not pyplot) and saved as PNGs beside the JSON reports `evaluation.report` writes.

Figures grow with the classes up to `MAX_FIGURE_INCHES`; past `plot_labels.MAX_TICK_LABELS` classes they name every
k-th class and the confusion matrix names its most confused pairs beside it. Past `MAX_HEAT_CELLS` classes a cell of
the heat map is a block of classes (`heat_map_shares`). Names are drawn shortened (`plot_labels.short_names`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hfspeech.inference.plot_labels import (MAX_TICK_LABELS, drawable_class_names, figure_class, save_figure,
                                            short_names, tick_positions)

MAX_FIGURE_INCHES = 20.0  # 2,400 pixels at 120 dpi: a speaker-ID matrix of 300 classes took 15 GB and 4 minutes
MOST_CONFUSED = 30  # pairs named beside a matrix too big to name every class
MAX_HEAT_CELLS = 1000  # a side of the heat map, in cells: about the pixels it gets in a figure of MAX_FIGURE_INCHES


def plot_confusion_matrix(matrix: np.ndarray, label_names: Sequence[str], path: str, title: str = "") -> None:
    """`confusion_figure` saved as a PNG at 120 dpi."""
    save_figure(confusion_figure(matrix, label_names, title), path, dpi=120)


def confusion_figure(matrix: np.ndarray, label_names: Sequence[str], title: str = ""):
    """A labelled heat map with the count in each cell (up to 40 classes), rows normalised for the colour.
    The figure grows with the classes up to `MAX_FIGURE_INCHES`; past that the cells shrink instead, and past
    `MAX_HEAT_CELLS` classes a cell is a block of classes (`heat_map_shares`). Names with characters the fonts
    lack are drawn as `drawable_class_names` says, long ones shortened (`short_names`; the JSON holds them as
    written). Past `MAX_TICK_LABELS` classes the heat map names only every k-th class and a cell is a few pixels, so
    no error could be told by name: the `MOST_CONFUSED` pairs are drawn beside it, named."""
    Figure = figure_class()  # matplotlib's, without its notes on an unwritable config folder

    n = len(label_names)
    size = min(max(4.0, 0.55 * n + 2.5), MAX_FIGURE_INCHES)
    fig = Figure(figsize=(size, size * 0.9))
    many = n > MAX_TICK_LABELS
    ax, pairs_ax = fig.subplots(1, 2, width_ratios=[3.4, 1]) if many else (fig.subplots(), None)
    shares, block = heat_map_shares(matrix)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest",
                      extent=(-0.5, n - 0.5, n - 0.5, -0.5))  # class ids on the axes, whatever the block
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true label" if block == 1 else
                 f"share of true label (a cell: {block}\u00d7{block} classes, their largest)")
    shown = short_names(drawable_class_names(label_names))
    _name_classes(ax, shown)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    if n <= 40:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                        color="white" if shares[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title(title, fontsize=10)
    if many:
        _draw_most_confused(pairs_ax, matrix, shown)
    return fig


def heat_map_shares(matrix: np.ndarray, max_cells: int = MAX_HEAT_CELLS) -> tuple[np.ndarray, int]:
    """(the shares of each true label to colour, float32; the side of the block of classes a cell stands for).

    Up to `max_cells` classes a cell is a class pair. Past it, a cell is a `block`x`block` square of class pairs
    holding their largest share, so that one error among thousands of speakers stays a visible dot: each class
    pair was under a pixel, drawn nearest-neighbour (some pairs left out), and matplotlib resampled a float64
    copy of every one (6,000 classes: 3.6 GB and 12.7 s). The blocks are made a few rows at a time."""
    n = matrix.shape[0]
    row_sums = matrix.sum(axis=1)
    scale = np.divide(1.0, row_sums, out=np.zeros(n), where=row_sums > 0).astype(np.float32)[:, None]
    block = max(1, -(-n // max_cells))
    if block == 1:
        return matrix.astype(np.float32) * scale, 1
    starts = np.arange(0, n, block)
    shares = np.empty((len(starts), len(starts)), dtype=np.float32)
    for row, start in enumerate(starts):
        rows = matrix[start:start + block].astype(np.float32) * scale[start:start + block]
        shares[row] = np.maximum.reduceat(rows.max(axis=0), starts)
    return shares, block


def most_confused_pairs(matrix: np.ndarray, count: int = MOST_CONFUSED) -> list[tuple[int, int, int]]:
    """The `count` largest off-diagonal cells as (true id, predicted id, clips), most clips first, ties in
    (true, predicted) order; only cells with an error in them. Only the nonzero cells are copied (a copy of the
    whole matrix was 288 MB at 6,000 classes)."""
    true, predicted = np.nonzero(matrix)
    errors = true != predicted
    true, predicted = true[errors], predicted[errors]
    clips = np.asarray(matrix)[true, predicted].astype(np.int64)
    order = np.lexsort((predicted, true, -clips))[:count]
    return [(int(true[i]), int(predicted[i]), int(clips[i])) for i in order]


def _draw_most_confused(ax, matrix: np.ndarray, shown: Sequence[str]) -> None:
    """Horizontal bars of `most_confused_pairs`, each named `true -> predicted` (`shown`: the names as drawn) with
    its share of the true class."""
    pairs = most_confused_pairs(matrix)
    errors = int(matrix.sum() - np.trace(matrix))
    ax.set_title(f"the {len(pairs)} most confused pairs ({sum(c for *_, c in pairs)} of {errors} errors)", fontsize=10)
    if not pairs:
        ax.set_axis_off()
        return
    rows = matrix.sum(axis=1)
    ax.barh(range(len(pairs)), [c for *_, c in pairs], color="tab:blue")
    ax.set_yticks(range(len(pairs)), labels=[f"{shown[t]} \u2192 {shown[p]} ({c}/{rows[t]})" for t, p, c in pairs],
                  fontsize=8, parse_math=False)
    ax.invert_yaxis()  # the most confused on top
    ax.xaxis.get_major_locator().set_params(integer=True)  # clips: 1, 2, 3, not 0.25
    ax.set_xlabel("clips (true label \u2192 predicted)")


def _name_classes(ax, label_names: Sequence[str]) -> None:
    """Tick labels on both axes: all of them, or every k-th past `MAX_TICK_LABELS` (`plot_labels.tick_positions`)."""
    positions, fontsize = tick_positions(len(label_names))
    names = [label_names[i] for i in positions]
    every = len(positions) == len(label_names)
    ax.set_xticks(positions, labels=names, rotation=45 if every else 90, ha="right" if every else "center",
                  fontsize=fontsize, parse_math=False)  # `$5` is a label, not TeX (`$x^$` raised a traceback)
    ax.set_yticks(positions, labels=names, fontsize=fontsize, parse_math=False)


def plot_per_class_scores(per_class: dict[str, dict], path: str, title: str = "") -> None:
    """`per_class_figure` saved as a PNG at 120 dpi."""
    save_figure(per_class_figure(per_class, title), path, dpi=120)


def per_class_figure(per_class: dict[str, dict], title: str = ""):
    """Side-by-side bars of each class's average precision and F1 (at its threshold); past `MAX_TICK_LABELS`
    classes, where a bar is a pixel or less, a filled step line of AP and one of F1 over the class index."""
    Figure = figure_class()  # matplotlib's, without its notes on an unwritable config folder

    names = list(per_class)
    positions = np.arange(len(names))
    ap = [per_class[n]["ap"] if per_class[n]["ap"] is not None else 0.0 for n in names]
    f1 = [per_class[n]["f1"] if per_class[n]["f1"] is not None else 0.0 for n in names]
    fig = Figure(figsize=(min(max(5.0, 0.6 * len(names) + 2.5), MAX_FIGURE_INCHES), 4.0))
    ax = fig.subplots()
    if len(names) <= MAX_TICK_LABELS:
        ax.bar(positions - 0.2, ap, width=0.4, label="average precision")
        ax.bar(positions + 0.2, f1, width=0.4, label="F1 at threshold")
        shown = short_names(drawable_class_names(names))
        ax.set_xticks(positions, labels=[f"{s}\n(n={per_class[n]['support']})" for s, n in zip(shown, names)],
                      parse_math=False,
                      rotation=45 if len(names) > 8 else 0, ha="right" if len(names) > 8 else "center")
    else:  # a bar under a pixel wide: two outlines, not 4,000 patches (12 s to draw at 2,000 labels); too many
        edges = np.arange(len(names) + 1) - 0.5  # to name under the bars: the JSON report lists them
        ax.stairs(ap, edges, fill=True, alpha=0.6, label="average precision")
        ax.stairs(f1, edges, color="tab:orange", label="F1 at threshold")
        ax.set_xticks(tick_positions(len(names))[0])
        ax.set_xlabel("class index (names in the JSON report)")
    ax.set_ylim(0, 1.22)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("score")
    ax.legend(loc="upper center", ncol=2, fontsize=8)
    ax.set_title(title, fontsize=10)
    return fig
