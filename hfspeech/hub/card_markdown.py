"""The markdown pieces every part of the model card is built from: tables whose cells stay in their columns, labels
shown as written, numbers that say when they were not measured. Apart from ``hub.card`` so that the card's
sections in other modules (``hub.card_classes``) use the same ones."""

from __future__ import annotations

import math


def markdown_table(header: tuple, rows: list) -> str:
    """A markdown table; a `|` or a line break in a cell (a label `a|b`) ended its row early and shifted the
    cells after it into the wrong columns."""
    def cell(value) -> str:
        return " ".join(str(value).splitlines()).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])


def label_text(label: str) -> str:
    """A label as markdown shows it as written: `_silence_` was shown in italics as `silence`, `<unk>` not at all
    (an HTML tag), `*`, `[x](y)` and backslashes were read as markup too, and `&lt;unk&gt;` as `<unk>` (an entity)."""
    return "".join("\\" + char if char in "\\`*_[]<>~#&" else char for char in label)


def measured(value) -> bool:
    """A number metrics.json really holds (NaN, null and absent are all 'not measured')."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if measured(value) else "n/a"
