"""Names this process cannot use as they are: bytes that are not UTF-8, and UTF-8 in an ASCII locale; and names
hfspeech makes from a user's words that another system cannot (`not_portable`, `same_on_macos_and_windows`).

On Linux a name is bytes. One copied from an old Windows or Latin-1 disk (`caf\\xe9.wav`) is not UTF-8: Python
keeps its bytes as surrogates (`caf\\udce9`), a str that Arrow, safetensors, onnxruntime and torchcodec refuse (an
Arrow traceback, "corrupt weights", a torch traceback). Under an ASCII locale (`LC_ALL=C` without PYTHONUTF8) even a
UTF-8 name is read so, and a manifest's `café.wav` cannot be passed to the OS at all (`os.path.exists` says False).
One wording for both, the name shown with its bytes (`\\xe9`), for data, models and output folders alike.

Like `hfspeech.errors`, a bottom layer: it imports nothing from hfspeech, and everything may import it.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from typing import Iterable, Optional

NOT_UTF8 = "the name is not UTF-8"
RENAME_HINT = "e.g. Latin-1 from an old archive; rename to UTF-8, e.g. with `convmv -f latin1 -t utf8 --notest`"


def is_utf8(path: str | os.PathLike) -> bool:
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:  # a surrogate: a byte of the name that is not UTF-8
        return False
    return True


def name_bytes(path: str | os.PathLike | bytes) -> Optional[bytes]:
    """The name's bytes: the str's UTF-8 with surrogates as the bytes they hold, not `os.fsencode`'s, which under an
    ASCII locale cannot encode `café` at all. None for a surrogate no decoding leaves (`\\ud800`, from JSON)."""
    raw = path if isinstance(path, bytes) else os.fspath(path)
    if isinstance(raw, bytes):
        return raw
    try:
        return raw.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return None


def not_utf8_problem(path: str | os.PathLike) -> str:
    """Why a name `is_utf8` (or the OS, `unusable_name`) refuses is so: bytes that are not UTF-8 (rename), or UTF-8
    that this Python, in an ASCII locale (LC_ALL=C, PYTHONUTF8=0), cannot read or pass on as text, where renaming
    would not help."""
    raw = name_bytes(path)
    if raw is None or not _decodes(raw):
        return f"{NOT_UTF8} ({RENAME_HINT})"
    return (f"the name is UTF-8 but Python reads names as {sys.getfilesystemencoding()} (an ASCII locale): run with "
            "PYTHONUTF8=1 or a UTF-8 locale (LC_ALL=C.UTF-8)")


def _decodes(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def refused_by_os(path: str | os.PathLike) -> Optional[str]:
    """`not_utf8_problem` for a name this process cannot give the OS under its locale (a manifest's `café.wav` under
    LC_ALL=C: `os.path.exists` swallowed the UnicodeEncodeError and said the file was missing), else None."""
    try:
        os.fsencode(path)
    except UnicodeEncodeError:
        return not_utf8_problem(path)
    return None


def unusable_name(path: str | os.PathLike) -> Optional[str]:
    """`not_utf8_problem` for a name that is not UTF-8 text or that the OS cannot be given (`refused_by_os`): what
    safetensors, onnxruntime, Arrow or the OS would refuse. None for a name that can be used."""
    return refused_by_os(path) or (None if is_utf8(path) else not_utf8_problem(path))


def shown_name(path: str | os.PathLike | bytes) -> str:
    """The name with its bytes that are not UTF-8 written as `\\xe9`: printable, and telling which bytes. A name
    holding a line break, tab or other unprintable character is shown as Python's repr (`'take\\n1.wav'`), as
    `predict` prints it: an error is one line, and its line break became a space, naming `take 1.wav`, which
    may be another file. Its bytes are `name_bytes`: under an ASCII locale (LC_ALL=C, PYTHONUTF8=0) a name shown
    once (`café`) crashed the second time it was shown (an `AudioFileError` of a shown name), and shown twice it
    is as shown once."""
    raw = name_bytes(path)
    if raw is None:  # a surrogate no decoding leaves (`\ud800`): shown as its escape
        raw = os.fspath(path).encode("utf-8", errors="backslashreplace")
    text = raw.decode("utf-8", errors="backslashreplace")
    return text if text.isprintable() else repr(text)


# What Windows will not take as a file or folder name (`ntpath.isreserved` of Python 3.13, which 3.11 lacks): a
# device's name, with any extension and in any case (`nul.txt`, `Com1`), and these characters anywhere
WINDOWS_DEVICE_NAMES = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{port}{digit}" for port in ("COM", "LPT") for digit in "123456789\xb9\xb2\xb3"})
WINDOWS_REFUSED_CHARACTERS = frozenset('<>:"/\\|?*') | {chr(code) for code in range(32)}


def not_portable(name: str) -> Optional[str]:
    """Why `name` cannot name a file or folder on every system hfspeech runs on (Windows refuses most), for a
    message's "NAME names a folder, and ...", or None. A name made from a label, a keyword or a group on Linux
    was written there, and failed on Windows (or named the console, `CON`), half-way through a run."""
    if name in ("", ".", ".."):
        return "it is not a name a file can have"
    if refused := sorted(set(name) & WINDOWS_REFUSED_CHARACTERS):
        return f"Windows refuses {' '.join(repr(character) for character in refused)} in a file name"
    if name[-1] in ". ":
        return "Windows drops a dot or a space at the end of a file name"
    if name.partition(".")[0].rstrip(" ").upper() in WINDOWS_DEVICE_NAMES:
        return "it is a device on Windows (CON, PRN, AUX, NUL, COM1-9, LPT1-9, with any extension), not a file name"
    return None


def caseless(name: str) -> str:
    """`name` as macOS and Windows compare file names: case and Unicode composition ignored (`Zoë` typed as one
    code point or as `e` and an accent; macOS stores the second)."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


def same_on_macos_and_windows(names: Iterable[str]) -> Optional[tuple[str, str]]:
    """The first two of `names` that are one file name on macOS and Windows (`Yes`, `yes`: the second written there
    replaced the first), the earlier first; None when no two are. Two equal names are a pair too."""
    first_of: dict[str, str] = {}
    for name in names:
        if (key := caseless(name)) in first_of:
            return first_of[key], name
        first_of[key] = name
    return None
