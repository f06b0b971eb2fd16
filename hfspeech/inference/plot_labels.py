"""Class names and file names in plots (confusion matrix, per-class bars, timelines), drawn with matplotlib's fonts.

matplotlib's default font (DejaVu Sans) has no Chinese, Japanese or Korean characters, nor emoji: each one was
drawn as an empty box, so that `中文` and `日本` were the same two boxes in a confusion matrix, and every missing
character was a Python `UserWarning` of two lines on stderr ("Glyph 20013 ... missing from font(s)", once per
character and drawing call: thousands of lines for 500 Chinese speaker names). A name with a character none of
the fonts has is now drawn with `□` in its place and, for a class, its id before it (`#12 □□`), and a single
log line says which names, that the JSON reports hold them as written, and how to get a font that has them.
The fonts are matplotlib's own choice (`font.family` / `font.sans-serif` of the user's matplotlibrc), so a user
who names a CJK font there gets the names drawn as written.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from functools import lru_cache
from typing import Sequence

logger = logging.getLogger(__name__)

MAX_TICK_LABELS = 60  # beyond this many classes, every k-th is named (the JSON reports hold them all)
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
