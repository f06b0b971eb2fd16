"""Class names and file names in plots (confusion matrix, per-class bars, timelines), drawn with matplotlib's fonts.

matplotlib's default font (DejaVu Sans) has no Chinese, Japanese or Korean characters, nor emoji: each one was
drawn as an empty box, so that `中文` and `日本` were the same two boxes in a confusion matrix, and every missing
character was a Python `UserWarning` of two lines on stderr ("Glyph 20013 ... missing from font(s)", once per
character and drawing call: thousands of lines for 500 Chinese speaker names). A name with a character none of
the fonts has is now drawn with `□` in its place and, for a class, its id before it (`#12 □□`), and a single
log line says which names, that the JSON reports hold them as written, and how to get a font that has them.
The fonts are matplotlib's own choice (`font.family` / `font.sans-serif` of the user's matplotlibrc), so a user
who names a CJK font there gets the names drawn as written.

A name longer than `NAME_CHARS` is drawn as its start, `…` and its end (`short_names`): 300 speaker names of 222
characters, drawn whole, squeezed a confusion matrix to a seventh of its figure, and names that shared a long
ending all read `…running_` at the figure's edge. Figures are saved by `save_figure`, which lets no matplotlib
warning through to the user's terminal.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections import Counter
from functools import lru_cache
from typing import Sequence

logger = logging.getLogger(__name__)

MAX_TICK_LABELS = 60  # beyond this many classes, every k-th is named (the JSON reports hold them all)
NAME_CHARS = 24  # a name drawn longer is shortened to its start, `…` and its end
MISSING = "\u25a1"  # □, which DejaVu Sans has
_TOLD: set[tuple[str, ...]] = set()  # the names already told about: a timeline per file told it per file


def drawable_class_names(names: Sequence[str], what: str = "class name") -> list[str]:
    """Each name as the plot can draw it: as written, or with `□` for the characters no font has and the
    class id first (`#12 □□`), so that two such names stay apart; one log line (once a process) when any
    name was changed."""
    characters = _font_characters()
    shown, changed = [], []
    for class_id, name in enumerate(names):
        if all(ord(char) in characters for char in name):
            shown.append(name)
        else:
            changed.append(name)
            shown.append(f"#{class_id} {_with_boxes(name, characters)}")
    if changed and tuple(changed) not in _TOLD:
        _TOLD.add(tuple(changed))
        logger.warning("note: %d %s(s) hold characters matplotlib's fonts lack (e.g. %r), drawn as %s with the "
                       "class id in the plots; the JSON reports hold them as written. To draw them, install a font "
                       "that has them (e.g. Noto Sans CJK) and name it in matplotlib's font.sans-serif",
                       len(changed), what, changed[0], MISSING)
    return shown


def drawable_text(text: str) -> str:
    """`text` (a title, a file name) with `□` for the characters no font has."""
    return _with_boxes(text, _font_characters())


@contextlib.contextmanager
def glyph_warnings_silenced():
    """matplotlib's "Glyph ... missing from font(s)" warnings left out while drawing: the names were told once
    (`drawable_class_names`), and what slips through (an axis text) is drawn as a box, as before."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)
        yield


def short_names(names: Sequence[str], limit: int = NAME_CHARS) -> list[str]:
    """Each name of more than `limit` characters as its start, `\u2026` and its end (`speaker_0031_…_running_`):
    a class is told apart by its start (`dog_…`) or its end (`…_take3`) far more often than by its middle, and
    cutting only the end left five names sharing a long ending reading alike. Where the even split leaves names
    reading alike, the split that leaves the fewest does (`speaker_0017_recorded…` keeps its number); any still
    alike get their class id first (`#12 `), as `drawable_class_names` gives a name of boxes."""
    even = (limit - 1) // 2
    if all(len(name) <= limit for name in names):
        return list(names)
    splits = sorted(range(limit), key=lambda start: abs(start - even))  # the even split first, then the nearest
    best = min(([_cut(name, limit, start) for name in names] for start in splits), key=_alike)
    counts = Counter(best)
    return [text if counts[text] == 1 or text == name else _cut(f"#{class_id} {name}", limit, even)
            for class_id, (text, name) in enumerate(zip(best, names))]


def _cut(name: str, limit: int, start: int) -> str:
    """`name` up to `limit` characters: as written, or its first `start` characters, `…` and its end."""
    if len(name) <= limit:
        return name
    return f"{name[:start]}\u2026{name[len(name) - (limit - 1 - start):]}"


def _alike(shown: list[str]) -> int:
    """How many of `shown` read like another."""
    return sum(count for count in Counter(shown).values() if count > 1)


def save_figure(fig, path, dpi: int) -> None:
    """`fig` laid out (`tight_layout`) and saved as a PNG, with no matplotlib warning on the user's terminal: a
    glyph no font has was told once (`drawable_class_names`), and "Tight layout not applied" (decorations too
    big for the margins) came as a raw `UserWarning` naming a line of hfspeech's source during `train`. Such a
    figure is saved with matplotlib's default margins, as it was."""
    with glyph_warnings_silenced(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="tight.layout not applied", category=UserWarning)  # any case
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)


def _with_boxes(text: str, characters: frozenset) -> str:
    return "".join(char if ord(char) in characters else MISSING for char in text)


def _font_characters() -> frozenset:
    """The characters of the fonts matplotlib draws text with now (its fallback list, as `font.family` and
    `font.sans-serif` give it)."""
    from matplotlib import font_manager

    properties = font_manager.FontProperties()
    find_all = getattr(font_manager.fontManager, "_find_fonts_by_props", None)  # what matplotlib's text uses
    paths = find_all(properties) if find_all is not None else [font_manager.findfont(properties)]
    return _characters_of(tuple(str(path) for path in paths))


@lru_cache(maxsize=8)
def _characters_of(paths: tuple[str, ...]) -> frozenset:
    from matplotlib.ft2font import FT2Font

    characters: set[int] = set()
    for path in paths:
        with contextlib.suppress(OSError, RuntimeError, ValueError):  # a font FreeType cannot read draws nothing
            characters.update(FT2Font(path).get_charmap())
    return frozenset(characters)


def tick_positions(count: int) -> tuple[list[int], int]:
    """(the positions of the names to draw, their font size) on an axis of `count` classes: all of them, or
    every k-th (smaller) past `MAX_TICK_LABELS` (the confusion matrix, the timeline's label axis)."""
    step = max(1, -(-count // MAX_TICK_LABELS))
    return list(range(0, count, step)), 10 if step == 1 else 6


# matplotlib's words where its config folder cannot be written (HOME read-only or unset: a container's): two WARNING
# lines of ~300 characters in train's and evaluate's logs, and raw on predict --timeline's stderr
MATPLOTLIB_FOLDER_NOTES = ("mkdir -p failed for path", "is not a writable directory",
                           "Matplotlib created a temporary cache directory")


def without_folder_notes(record: logging.LogRecord) -> bool:
    """A logging filter leaving out `MATPLOTLIB_FOLDER_NOTES`: matplotlib then works in a private (0700) temporary
    folder it removes at exit, which is safe; the notes only say a font cache is not kept between runs."""
    return not any(note in str(record.msg) for note in MATPLOTLIB_FOLDER_NOTES)


def figure_class():
    """matplotlib's `Figure` (not pyplot: `matplotlib.use("Agg")` switched a notebook's backend), imported with
    `without_folder_notes` on matplotlib's logger (its folder is looked for once, on that import)."""
    logging.getLogger("matplotlib").addFilter(without_folder_notes)  # once: a filter already there is not added
    from matplotlib.figure import Figure

    return Figure
