"""File names that are not UTF-8 (Latin-1 or cp437 bytes from an old archive: `caf\\xe9`): Python keeps their
bytes as surrogates, a str that Arrow cannot store and torchcodec refuses ("Expected a value of type 'str'
... but found type 'str'"). Training (`data.folders`) and decoding (`data.audio`) name them with one wording,
`hfspeech.path_names`' (model and output folders use it too).
And cell text a spreadsheet mangled (`spreadsheet_damage`): UTF-8 once read as Windows-1252 (`cafÃ©`), `#N/A`."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path



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


# What a spreadsheet writes in a cell whose formula failed: as a label it became a class of its own.
SPREADSHEET_ERRORS = {"#N/A", "#REF!", "#VALUE!", "#DIV/0!", "#NAME?", "#NULL!", "#NUM!", "#SPILL!", "#CALC!"}
# The characters Windows-1252 puts at bytes 0x80-0x9F (`€`, `‚` ... `Ÿ`), back to their bytes.
CP1252_HIGH = {bytes([b]).decode("cp1252"): b for b in range(0x80, 0xA0) if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)}


# How to mend a damaged label, by where it was written: a manifest's cell, an audio folder's folder name, a dataset's
# class names (a `ClassLabel`, from the Hub): "mend that cell" sent a folder's owner looking for a cell.
MENDS = {"cell": ("mend that cell", "(opened in Excel without choosing UTF-8, then saved): write {!r}"),
         "folder": ("rename that folder", "(a name copied or unpacked by a tool that did so): rename it to {!r}"),
         "class": ("one of the dataset's class names (its ClassLabel feature), to mend there",
                   "in the dataset's class names (its ClassLabel feature): mend it there to {!r}"),
         "dataset": ("a value of the dataset's label column, to mend there",
                     "in the dataset's label column: mend it there to {!r}")}
# A capital then typography (`É’`, `Ü–`, `CAFÉ\xa0!`, `Ø°C`) is also the Windows-1252 spelling of a 2-byte character
# (`ɒ`, Syriac, IPA, Arabic): such a pair counts as mangling only beside one that is not such a pair (`Ø§Ù„Ø°` is
# Arabic). `Â` `Ã` `Ä` `Å` (`Ã\xa0` is `à`), Greek's `Î` `Ï`, Cyrillic's `Ð` `Ñ` (`Ð”Ð°` is `Да`), Hebrew's `×`
# and the leads of 3 and 4 byte characters (`â€™`) always count: they rarely stand before typography.
LIKELY_LEADS = frozenset([*range(0xC2, 0xC6), 0xCE, 0xCF, 0xD0, 0xD1, 0xD7, *range(0xE0, 0xF5)])
TYPOGRAPHY = frozenset(CP1252_HIGH.get(char, ord(char)) for char in "‘’‚“”„–—…•«»°\xa0")
UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def spreadsheet_damage(text: str, written_in: str = "cell") -> str | None:
    """Why a label's text is not what its writer meant, or None: a spreadsheet's error value (`#N/A`), or UTF-8 text
    once read as Windows-1252 and saved again (`cafÃ©` for `café`); each became a class of its own without a word.
    `written_in`: where the label was written (`MENDS`), which says how to mend it."""
    error_value, rewrite = MENDS[written_in]
    if text.strip().upper() in SPREADSHEET_ERRORS:
        return f"is a spreadsheet's error value (a formula that failed), not a value: {error_value}"
    intended = mojibake_intended(text)
    return None if intended is None else (f"looks like {intended!r} written as UTF-8 and read as Windows-1252 "
                                          + rewrite.format(intended))


def mojibake_intended(text: str) -> str | None:
    """The text `text` was before UTF-8 was read as Windows-1252 and saved again (`cafÃ©` -> `café`; twice:
    `cafÃƒÂ©`), else None. Real words in any script are not the Windows-1252 spelling of other valid UTF-8 (that
    needs e.g. `Ã` then one of `€`-`¿`), so `café`, `Zoë`, `日本` are None; a spreadsheet writes such text."""
    intended = text
    for _ in range(3):
        intended = _read_as_utf8(intended) or intended
    return intended if intended != text else None


def _read_as_utf8(text: str) -> str | None:
    """`text`'s Windows-1252 bytes (Latin-1 for the 5 it leaves undefined) read as UTF-8, when they are UTF-8 and
    not all typography (`_typographic`)."""
    if text.isascii() or any(ord(char) > 0xFF and char not in CP1252_HIGH for char in text):
        return None
    data = bytes(CP1252_HIGH.get(char, ord(char)) for char in text)
    try:
        intended = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return intended if not all(map(_typographic, UTF8_SEQUENCE.findall(data))) else None


def _typographic(sequence: bytes) -> bool:
    """Whether a UTF-8 sequence is also a capital then a quote, dash, degree or non-breaking space (`TYPOGRAPHY`)."""
    return sequence[0] not in LIKELY_LEADS and sequence[1] in TYPOGRAPHY
