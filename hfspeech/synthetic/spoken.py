"""Offline spoken data sets made by espeak-ng: keyword spotting and spoken-language ID.

Real corpora (Speech Commands, ...) need a download; these are made on the spot from the ``espeak-ng``
synthesiser with many voices, speaking rates, pitches and background noise (`hfspeech.synthetic.espeak`),
so that a classifier has something non-trivial to learn while everything stays offline and reproducible.
The output is the *audiofolder* layout that ``datasets`` reads directly::

    output_dir/<keyword>/<keyword>_<nnnn>.wav
    output_dir/README.md           # how the clips were made
    output_dir/dataset_info.json   # parameters, counts; marks a finished run

Both generators are idempotent in the lhotse sense (`hfspeech.synthetic.reuse`): called again with the same
parameters on a finished folder they return at once; with other parameters they regenerate.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from tqdm.auto import tqdm

from hfspeech.cpu_threads import usable_cpus
from hfspeech.errors import UsageError, writing_to
from hfspeech.path_names import not_portable, same_on_macos_and_windows
from hfspeech.synthetic.espeak import (ESPEAK_VARIANTS, ESPEAK_VOICES, PEAK_DBFS, PITCH, SPEED_WPM, check_voices,
                                       espeak_version, require_espeak, speak_clip)
from hfspeech.synthetic.reuse import GENERATOR_VERSION, GeneratedFolder
from hfspeech.synthetic.signals import write_pcm16

DEFAULT_KEYWORDS = ("yes", "no", "up", "down", "left", "right", "stop", "go")
DEFAULT_LANGUAGES = ("en", "de", "fr", "es", "it")


def _check_keywords(keywords: Sequence[str], what: str = "keyword") -> list[str]:
    """Keywords (or languages: `what`) become folder names and espeak text, so keep them to plain words that name
    a folder on every system, each its own: on macOS and Windows `yes` wrote into `Yes/`, and the run ended on a
    RuntimeError traceback ("expected N clips, found N"); `CON` names the console on Windows. Each in its composed
    form (NFC): `zoë` typed or pasted decomposed (`e` + U+0308, as macOS stores file names) was refused, the accent
    not being a letter to the pattern."""
    keywords = [unicodedata.normalize("NFC", kw) for kw in keywords]
    if not keywords:
        raise UsageError(f"{what}s must not be empty")
    for kw in keywords:
        if not re.fullmatch(r"[^\W\d_][\w' -]*", kw):
            raise UsageError(f"{what} {kw!r} must be a word (letters, digits, ', -, spaces)")
        if (problem := not_portable(kw)) is not None:
            raise UsageError(f"{what} {kw!r} names its class folder, and {problem}; give another word")
    if (same := same_on_macos_and_windows(keywords)) is not None:
        if same[0] == same[1]:
            raise UsageError(f"{what}s must be unique, got {keywords}")
        raise UsageError(f"{what}s {same[0]!r} and {same[1]!r} differ only in case (or Unicode composition): their "
                         "class folders would be one on macOS and Windows; give one of them")
    return keywords


def _check_snr(noise_snr_db: Optional[Sequence[float]]) -> Optional[tuple[float, float]]:
    if noise_snr_db is None:
        return None
    low, high = float(noise_snr_db[0]), float(noise_snr_db[1])
    if low > high:
        raise UsageError(f"noise_snr_db must be (low, high), got {(low, high)}")
    return low, high


def _readme(params: dict) -> str:
    return f"""---
pretty_name: hfspeech demo keywords
task_categories: [audio-classification]
tags: [synthetic, keyword-spotting, espeak-ng]
license: other
license_name: generated
---

# hfspeech demo keywords

Synthetic keyword-spotting data made offline by `hfspeech.synthetic.spoken.generate_keyword_dataset`
(generator version {GENERATOR_VERSION}). Not recorded speech: meant for demos, tests and smoke runs.

- Keywords: {', '.join(params['keywords'])}; {params['clips_per_keyword']} clips each.
- Speech: `espeak-ng` with a random voice among {', '.join(params.get('voices', ESPEAK_VOICES))}, a random variant among
  {', '.join(v for v in ESPEAK_VARIANTS if v)} (or none), speed {SPEED_WPM[0]}-{SPEED_WPM[1]} wpm,
  pitch {PITCH[0]}-{PITCH[1]}.
- Each word is trimmed, resampled to {params['sampling_rate']} Hz with soxr, placed at a random
  offset in a {params['clip_seconds']} s clip with a peak of {PEAK_DBFS[0]} to {PEAK_DBFS[1]} dBFS,
  and mixed with white or pink noise at an SNR in {params['noise_snr_db']} dB (None: no noise).
- Format: 16-bit PCM mono WAV, `<keyword>/<keyword>_<nnnn>.wav` (the *audiofolder* layout):
  `datasets.load_dataset("audiofolder", data_dir=...)` labels each clip by its folder.
- Seed {params['seed']}: the same parameters give byte-identical files.

License: generated. The audio is machine-made by espeak-ng and contains no recorded voices.
"""


def _expected_files(root: Path, keywords: list[str], clips_per_keyword: int) -> list[Path]:
    return [root / kw / f"{kw}_{i:04d}.wav" for kw in keywords for i in range(clips_per_keyword)]


def _remove_previous(root: Path, keywords: list[str], previous_info: dict) -> None:
    """Drop clips a previous (different or unfinished) run wrote: files named like ours only."""
    keywords = keywords + previous_info.get("classes", previous_info.get("keywords", []))
    for kw in set(keywords):
        for old in (root / kw).glob(f"{kw}_[0-9][0-9][0-9][0-9].wav"):
            old.unlink()


def _common_params(sampling_rate: int, clip_seconds: float, noise_snr_db, seed: int) -> dict:
    return dict(sampling_rate=int(sampling_rate), clip_seconds=float(clip_seconds),
                noise_snr_db=list(noise_snr_db) if noise_snr_db else None, seed=int(seed),
                generator_version=GENERATOR_VERSION)


def generate_keyword_dataset(
    output_dir,
    keywords: Sequence[str] = DEFAULT_KEYWORDS,
    clips_per_keyword: int = 60,
    sampling_rate: int = 16000,
    clip_seconds: float = 1.0,
    noise_snr_db: Optional[tuple[float, float]] = (5.0, 30.0),
    seed: int = 0,
    progress: bool = True,
    voices: Sequence[str] = ESPEAK_VOICES,
) -> Path:
    """Write (or find already written) the demo keyword dataset; returns ``output_dir``.

    ``voices``: the espeak-ng voices drawn from (default: its English ones); a voice of another language reads
    the English keyword with that language's rules, a crude stand-in for a foreign accent."""
    keywords = _check_keywords(keywords)
    noise_snr_db = _check_snr(noise_snr_db)
    voices = tuple(voices)
    if not voices:
        raise UsageError("voices must not be empty")
    params = dict(keywords=keywords, clips_per_keyword=int(clips_per_keyword),
                  **_common_params(sampling_rate, clip_seconds, noise_snr_db, seed))
    if voices != tuple(ESPEAK_VOICES):  # the default stays out, so folders made before this option still match
        params["voices"] = list(voices)

    def make_clip(exe, keyword, rng):
        return speak_clip(exe, keyword, rng, sampling_rate, clip_seconds, noise_snr_db, voices=voices)

    return _generate_folder(Path(output_dir), params, keywords, clips_per_keyword, make_clip,
                            _readme(params), "espeak-ng keywords", progress, voices)


def generate_language_dataset(
    output_dir,
    languages: Sequence[str] = DEFAULT_LANGUAGES,
    clips_per_language: int = 40,
    sampling_rate: int = 16000,
    clip_seconds: float = 2.0,
    noise_snr_db: Optional[tuple[float, float]] = (10.0, 30.0),
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """A spoken-language-ID set: espeak-ng reads random numbers in each language (``<lang>/*.wav``).

    Numbers are the one text every espeak-ng language can say without a word list, and how they are
    said ("siebenundvierzig", "quarante-sept", "forty-seven") is all language. Same voices, variants,
    speeds and noise as the keyword set, so only the language tells the classes apart.
    """
    languages = _check_keywords(languages, "language")
    noise_snr_db = _check_snr(noise_snr_db)
    params = dict(languages=languages, clips_per_language=int(clips_per_language),
                  **_common_params(sampling_rate, clip_seconds, noise_snr_db, seed))

    def make_clip(exe, language, rng):
        text = " ".join(str(n) for n in rng.integers(10, 10000, size=2))
        return speak_clip(exe, text, rng, sampling_rate, clip_seconds, noise_snr_db, voices=(language,))

    readme = (f"# hfspeech demo languages\n\nespeak-ng reading two random numbers per clip in "
              f"{', '.join(languages)}; {clips_per_language} clips each, {clip_seconds} s, {sampling_rate} Hz, "
              f"noise SNR {params['noise_snr_db']} dB, seed {seed}. Generated by "
              "`hfspeech.synthetic.spoken.generate_language_dataset`. License: generated (no recorded voices).\n")
    return _generate_folder(Path(output_dir), params, languages, clips_per_language, make_clip, readme,
                            "espeak-ng languages", progress, languages)


def _write_clips(root: Path, params: dict, classes: list[str], clips_per_class: int, make_clip, exe: str,
                 desc: str, progress: bool) -> None:
    """``root/<class>/<class>_<nnnn>.wav`` for every class and index, on threads. Each clip is encoded in memory
    and written by Python: libsndfile's own write hid a full disk's errno ("System error.", a traceback), while
    Python's `OSError` keeps it, so a full or read-only disk is one line naming `root` (`errors.writing_to`)."""
    def write(job):
        name, index = job
        # One generator per clip, keyed by class text and index: order- and thread-independent.
        rng = np.random.default_rng([int(params["seed"]), zlib.crc32(name.encode()), index])
        clip = make_clip(exe, name, rng)
        (root / name).mkdir(exist_ok=True)
        write_pcm16(root / name / f"{name}_{index:04d}.wav", clip, params["sampling_rate"])

    # espeak-ng runs as a subprocess, so threads overlap well (measured: ~2x on 2 cores).
    jobs = [(name, index) for name in classes for index in range(clips_per_class)]
    with writing_to(root, "make room and run it again"), \
            ThreadPoolExecutor(max_workers=min(16, 2 * usable_cpus())) as pool:  # a container's quota, not the host
        for _ in tqdm(pool.map(write, jobs), total=len(jobs), disable=not progress, desc=desc, unit="clip"):
            pass


def _generate_folder(root: Path, params: dict, classes: list[str], clips_per_class: int, make_clip,
                     readme: str, desc: str, progress: bool, voices: Sequence[str]) -> Path:
    """Write ``root/<class>/<class>_<nnnn>.wav`` with ``make_clip(exe, class, rng)``, idempotently; every voice
    of ``voices`` is tried first."""
    if clips_per_class < 1 or params["sampling_rate"] < 1 or params["clip_seconds"] <= 0:
        raise UsageError("clips per class, sampling_rate and clip_seconds must be positive")
    expected = _expected_files(root, classes, clips_per_class)
    folder = GeneratedFolder(root, params, expected, kind="keywords" if "keywords" in params else "languages")
    if folder.is_finished():
        return root

    folder.refuse_if_not_ours()  # a folder of the user's, as demo-data refuses it: before espeak-ng is looked for
    exe = require_espeak()
    check_voices(exe, voices)
    previous = folder.start_over()
    with writing_to(root, "make room and run it again"):
        _remove_previous(root, classes, previous)
    _write_clips(root, params, classes, clips_per_class, make_clip, exe, desc, progress)
    written = sorted(p for name in classes for p in (root / name).glob("*.wav"))
    if written != sorted(expected):
        raise RuntimeError(f"{root}: expected {len(expected)} clips, found {len(written)}")
    with writing_to(root, "make room and run it again"):
        (root / "README.md").write_text(readme, encoding="utf-8")
        folder.finish(classes=classes, counts={name: clips_per_class for name in classes}, num_clips=len(expected),
                      espeak_ng=espeak_version(exe))
    return root
