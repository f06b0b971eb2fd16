"""File names that are not UTF-8 (Latin-1 or cp437 bytes from an old archive: `caf\\xe9`): Python keeps their
bytes as surrogates, a str that Arrow cannot store and torchcodec refuses ("Expected a value of type 'str'
... but found type 'str'"). Training (`data.folders`) and decoding (`data.audio`) name them with one wording."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

NOT_UTF8 = "the name is not UTF-8"
RENAME_HINT = "e.g. Latin-1 from an old archive; rename to UTF-8, e.g. with `convmv -f latin1 -t utf8 --notest`"


def is_utf8(path: str | os.PathLike) -> bool:
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:  # a surrogate: a byte of the name that is not UTF-8
        return False
    return True


def shown_name(path: str | os.PathLike) -> str:
    """The name with its bytes that are not UTF-8 written as `\\xe9`: printable, and telling which bytes. A name
    holding a line break, tab or other unprintable character is shown as Python's repr (`'take\\n1.wav'`), as
    `predict` prints it: an error is one line, and its line break became a space, naming `take 1.wav`, which
    may be another file."""
    text = os.fsencode(path).decode("utf-8", errors="backslashreplace")
    return text if text.isprintable() else repr(text)


def existing_spelling(text: str, base: Path) -> str:
    """`text` (a manifest's path cell, relative to `base`) in the Unicode normalisation its file has on disk:
    a name typed or written NFC ("é" one code point) while the file copied from macOS is NFD ("e" + accent),
    or the reverse, was reported as missing although `ls` shows the same name. As written when that exists,
    or when neither spelling does (the missing-file error then names it as written)."""
    full = text if os.path.isabs(text) else str(base / text)
    if os.path.lexists(full):
        return full
    for form in ("NFC", "NFD"):
        spelled = unicodedata.normalize(form, text)
        candidate = spelled if os.path.isabs(spelled) else str(base / spelled)
        if spelled != text and os.path.lexists(candidate):
            return candidate
    return full
