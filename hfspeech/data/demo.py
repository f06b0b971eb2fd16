"""An offline keyword-spotting dataset spoken by espeak-ng, for demos, tests and smoke runs.

Real corpora (Speech Commands, ...) need a download; this one is made on the spot from the
``espeak-ng`` synthesiser with many English voices, speaking rates, pitches and background noise,
so that a classifier has something non-trivial to learn while everything stays offline and
reproducible. The output is the *audiofolder* layout that ``datasets`` reads directly::

    output_dir/<keyword>/<keyword>_<nnnn>.wav
    output_dir/README.md           # how the clips were made
    output_dir/dataset_info.json   # parameters, counts; marks a finished run

``generate_keyword_dataset`` is idempotent in the lhotse sense: called again with the same
parameters on a finished folder it returns at once; with other parameters it regenerates.

``generate_event_dataset`` makes a *multi-label* sound-event set without espeak-ng: each clip mixes
1-3 synthetic events (beeps, chirps, clicks, noise bursts, hum) at random times over background noise,
and a manifest lists each clip's labels (``labels.csv`` with ``;``-separated labels, and the same in
``labels.jsonl`` as JSON lists)::

    output_dir/audio/events_<nnnn>.wav
    output_dir/labels.csv          # path,labels    e.g. audio/events_0007.wav,beep;hum
    output_dir/labels.jsonl        # {"path": ..., "labels": ["beep", "hum"]}
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import soundfile as sf
import soxr
from tqdm.auto import tqdm

from hfspeech.errors import HfspeechError, UsageError

GENERATOR_VERSION = 1
DEFAULT_KEYWORDS = ("yes", "no", "up", "down", "left", "right", "stop", "go")
DEFAULT_LANGUAGES = ("en", "de", "fr", "es", "it")
INFO_FILE = "dataset_info.json"


class MissingToolError(HfspeechError, RuntimeError):
    """A program the generator runs (espeak-ng) is not installed."""

# English voices shipped with espeak-ng itself (the mbrola ``mb-*`` voices need extra packages).
ESPEAK_VOICES = (
    "en-gb", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)
# Variants from espeak-ng-data/voices/!v; "" keeps the voice's own timbre.
ESPEAK_VARIANTS = (
    "", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
    "croak", "whisper", "klatt", "klatt2", "klatt3", "Andy", "annie", "edward", "steph",
)
SPEED_WPM = (110, 210)
PITCH = (20, 80)
PEAK_DBFS = (-24.0, -3.0)
NOISE_COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0, "blue": -1.0}


def colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Unit-variance noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0  # keep DC finite
    noise = np.fft.irfft(spectrum * freqs ** (-exponent / 2.0), n)
    noise -= noise.mean()
    return noise / (noise.std() + 1e-12)


def _require_espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise MissingToolError("espeak-ng not found: install it with `apt-get install espeak-ng`")
    return exe


def _check_keywords(keywords: Sequence[str]) -> list[str]:
    """Keywords become folder names and espeak text, so keep them to plain words."""
    keywords = list(keywords)
    if not keywords:
        raise UsageError("keywords must not be empty")
    for kw in keywords:
        if not re.fullmatch(r"[^\W\d_][\w' -]*", kw):
            raise UsageError(f"keyword {kw!r} must be a word (letters, digits, ', -, spaces)")
    if len(set(keywords)) != len(keywords):
        raise UsageError(f"keywords must be unique, got {keywords}")
    return keywords


def _check_snr(noise_snr_db: Optional[Sequence[float]]) -> Optional[tuple[float, float]]:
    if noise_snr_db is None:
        return None
    low, high = float(noise_snr_db[0]), float(noise_snr_db[1])
    if low > high:
        raise UsageError(f"noise_snr_db must be (low, high), got {(low, high)}")
    return low, high


def _synthesize(exe: str, text: str, voice: str, speed: int, pitch: int, amplitude: int):
    """Run espeak-ng once; returns (float32 waveform, its sampling rate)."""
    cmd = [exe, "--stdout", "-v", voice, "-s", str(speed), "-p", str(pitch), "-a", str(amplitude),
           text]
    result = subprocess.run(cmd, capture_output=True)
    if result.returncode != 0 or len(result.stdout) <= 44:
        stderr = result.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{' '.join(cmd)} failed: {stderr}")
    audio, rate = sf.read(io.BytesIO(result.stdout), dtype="float32")
    return audio, rate


def _make_clip(exe: str, keyword: str, rng: np.random.Generator, sampling_rate: int,
               clip_seconds: float, noise_snr_db: Optional[tuple[float, float]],
               voices: Sequence[str] = ESPEAK_VOICES) -> np.ndarray:
    """One clip: a random voice among ``voices`` says ``keyword`` (any text) at a random place, in noise."""
    variant = ESPEAK_VARIANTS[rng.integers(len(ESPEAK_VARIANTS))]
    voice = voices[rng.integers(len(voices))] + (f"+{variant}" if variant else "")
    speed = int(rng.integers(SPEED_WPM[0], SPEED_WPM[1] + 1))
    pitch = int(rng.integers(PITCH[0], PITCH[1] + 1))
    amplitude = int(rng.integers(60, 151))
    audio, rate = _synthesize(exe, keyword, voice, speed, pitch, amplitude)
    audio = soxr.resample(audio, rate, sampling_rate).astype(np.float64)

    # espeak pads with up to ~0.6 s of sentence pause; keep just the word.
    loud = np.flatnonzero(np.abs(audio) > 0.01 * np.abs(audio).max())
    if loud.size == 0:
        raise RuntimeError(f"espeak-ng produced silence for {keyword!r} with voice {voice}")
    word = audio[loud[0]: loud[-1] + 1]
    word *= 10 ** (rng.uniform(*PEAK_DBFS) / 20) / np.abs(word).max()

    n_clip = int(round(clip_seconds * sampling_rate))
    clip = np.zeros(n_clip)
    if len(word) >= n_clip:  # too long for the clip: keep a random window of it
        start = int(rng.integers(len(word) - n_clip + 1))
        clip[:] = word[start: start + n_clip]
        speech = slice(0, n_clip)
    else:
        offset = int(rng.integers(n_clip - len(word) + 1))
        clip[offset: offset + len(word)] = word
        speech = slice(offset, offset + len(word))

    if noise_snr_db is not None:
        colour = ("white", "pink")[rng.integers(2)]
        noise = colored_noise(rng, n_clip, NOISE_COLOURS[colour])
        speech_power = np.mean(clip[speech] ** 2)
        clip += noise * np.sqrt(speech_power / 10 ** (rng.uniform(*noise_snr_db) / 10))
    return np.clip(clip, -1.0, 1.0).astype(np.float32)


def _readme(params: dict) -> str:
    return f"""---
pretty_name: hfspeech demo keywords
task_categories: [audio-classification]
tags: [synthetic, keyword-spotting, espeak-ng]
license: other
license_name: generated
---

# hfspeech demo keywords

Synthetic keyword-spotting data made offline by `hfspeech.data.demo.generate_keyword_dataset`
(generator version {GENERATOR_VERSION}). Not recorded speech: meant for demos, tests and smoke runs.

- Keywords: {', '.join(params['keywords'])}; {params['clips_per_keyword']} clips each.
- Speech: `espeak-ng` with a random voice among {', '.join(ESPEAK_VOICES)}, a random variant among
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


def _remove_previous(root: Path, keywords: list[str]) -> None:
    """Drop clips a previous (different or unfinished) run wrote: files named like ours only."""
    info_path = root / INFO_FILE
    if info_path.exists():
        info = json.loads(info_path.read_text())
        keywords = keywords + info.get("classes", info.get("keywords", []))
        info_path.unlink()
    for kw in set(keywords):
        for old in (root / kw).glob(f"{kw}_[0-9][0-9][0-9][0-9].wav"):
            old.unlink()


def synth_tone_clip(frequency: Optional[float], rng: np.random.Generator, sampling_rate: int, seconds: float,
                    jitter: float = 0.02, noise: float = 0.01) -> np.ndarray:
    """A steady tone at `frequency` Hz (detuned by a random `jitter` fraction), or white noise when it is None,
    plus a little white noise: classes a tiny model tells apart in a few epochs (tests and benchmarks)."""
    n = max(1, int(seconds * sampling_rate))
    t = np.arange(n) / sampling_rate
    if frequency is None:
        signal = rng.standard_normal(n) * 0.3
    else:
        signal = 0.5 * np.sin(2 * np.pi * frequency * (1 + jitter * rng.standard_normal()) * t)
    return (signal + noise * rng.standard_normal(n)).astype(np.float32)


def generate_keyword_dataset(
    output_dir,
    keywords: Sequence[str] = DEFAULT_KEYWORDS,
    clips_per_keyword: int = 60,
    sampling_rate: int = 16000,
    clip_seconds: float = 1.0,
    noise_snr_db: Optional[tuple[float, float]] = (5.0, 30.0),
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Write (or find already written) the demo keyword dataset; returns ``output_dir``."""
    keywords = _check_keywords(keywords)
    noise_snr_db = _check_snr(noise_snr_db)
    params = dict(keywords=keywords, clips_per_keyword=int(clips_per_keyword),
                  sampling_rate=int(sampling_rate), clip_seconds=float(clip_seconds),
                  noise_snr_db=list(noise_snr_db) if noise_snr_db else None, seed=int(seed),
                  generator_version=GENERATOR_VERSION)

    def make_clip(exe, keyword, rng):
        return _make_clip(exe, keyword, rng, sampling_rate, clip_seconds, noise_snr_db)

    return _generate_folder(Path(output_dir), params, keywords, clips_per_keyword, make_clip,
                            _readme(params), "espeak-ng keywords", progress)


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
    languages = _check_keywords(languages)
    noise_snr_db = _check_snr(noise_snr_db)
    params = dict(languages=languages, clips_per_language=int(clips_per_language),
                  sampling_rate=int(sampling_rate), clip_seconds=float(clip_seconds),
                  noise_snr_db=list(noise_snr_db) if noise_snr_db else None, seed=int(seed),
                  generator_version=GENERATOR_VERSION)

    def make_clip(exe, language, rng):
        text = " ".join(str(n) for n in rng.integers(10, 10000, size=2))
        return _make_clip(exe, text, rng, sampling_rate, clip_seconds, noise_snr_db, voices=(language,))

    readme = (f"# hfspeech demo languages\n\nespeak-ng reading two random numbers per clip in "
              f"{', '.join(languages)}; {clips_per_language} clips each, {clip_seconds} s, {sampling_rate} Hz, "
              f"noise SNR {params['noise_snr_db']} dB, seed {seed}. Generated by "
              "`hfspeech.data.demo.generate_language_dataset`. License: generated (no recorded voices).\n")
    return _generate_folder(Path(output_dir), params, languages, clips_per_language, make_clip, readme,
                            "espeak-ng languages", progress)


def _generate_folder(root: Path, params: dict, classes: list[str], clips_per_class: int, make_clip,
                     readme: str, desc: str, progress: bool) -> Path:
    """Write ``root/<class>/<class>_<nnnn>.wav`` with ``make_clip(exe, class, rng)``, idempotently."""
    if clips_per_class < 1 or params["sampling_rate"] < 1 or params["clip_seconds"] <= 0:
        raise UsageError("clips per class, sampling_rate and clip_seconds must be positive")
    expected = _expected_files(root, classes, clips_per_class)
    info_path = root / INFO_FILE
    if info_path.exists():
        info = json.loads(info_path.read_text())
        if {k: info.get(k) for k in params} == params and all(p.exists() for p in expected):
            return root

    exe = _require_espeak()
    root.mkdir(parents=True, exist_ok=True)
    # The info file goes first, so that an interrupted run never looks finished.
    _remove_previous(root, classes)

    def write(job):
        name, index = job
        # One generator per clip, keyed by class text and index: order- and thread-independent.
        rng = np.random.default_rng([int(params["seed"]), zlib.crc32(name.encode()), index])
        clip = make_clip(exe, name, rng)
        (root / name).mkdir(exist_ok=True)
        sf.write(root / name / f"{name}_{index:04d}.wav", clip, params["sampling_rate"], subtype="PCM_16")

    # espeak-ng runs as a subprocess, so threads overlap well (measured: ~2x on 2 cores).
    jobs = [(name, index) for name in classes for index in range(clips_per_class)]
    with ThreadPoolExecutor(max_workers=min(16, 2 * (os.cpu_count() or 1))) as pool:
        for _ in tqdm(pool.map(write, jobs), total=len(jobs), disable=not progress, desc=desc, unit="clip"):
            pass

    written = sorted(p for name in classes for p in (root / name).glob("*.wav"))
    if written != sorted(expected):
        raise RuntimeError(f"{root}: expected {len(expected)} clips, found {len(written)}")
    (root / "README.md").write_text(readme)
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    info = dict(params, classes=classes, counts={name: clips_per_class for name in classes},
                num_clips=len(expected), espeak_ng=version)
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    return root


DEFAULT_EVENTS = ("beep", "chirp", "click", "burst", "hum")
EVENTS_PER_CLIP = (1, 3)
EVENT_PEAK = (0.15, 0.6)
BACKGROUND_STD = (0.005, 0.03)


def _fade(n: int, sampling_rate: int, seconds: float = 0.01) -> np.ndarray:
    """A raised-cosine attack and release, so events do not start or stop with a click of their own."""
    ramp = min(n // 2, max(1, int(seconds * sampling_rate)))
    envelope = np.ones(n)
    edge = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
    envelope[:ramp], envelope[n - ramp:] = edge, edge[::-1]
    return envelope


def synth_event(kind: str, rng: np.random.Generator, sampling_rate: int) -> np.ndarray:
    """One event, peak 1: `beep` (tone 900-1100 Hz), `chirp` (rising sweep ~400 -> ~3500 Hz), `click`
    (3-6 clicks 30-60 ms apart), `burst` (a white-noise burst), `hum` (~100 Hz with harmonics)."""
    def seconds(low, high):
        return int(rng.uniform(low, high) * sampling_rate)

    if kind == "beep":
        t = np.arange(seconds(0.12, 0.3)) / sampling_rate
        event = np.sin(2 * np.pi * rng.uniform(900, 1100) * t)
    elif kind == "chirp":
        n = seconds(0.2, 0.4)
        f0, f1 = rng.uniform(300, 500), rng.uniform(3000, 4000)
        t = np.arange(n) / sampling_rate
        event = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * t[-1])))
    elif kind == "click":
        count, gap = int(rng.integers(3, 7)), seconds(0.03, 0.06)
        event = np.zeros(count * gap)
        decay = np.exp(-np.arange(int(0.003 * sampling_rate)) / (0.0007 * sampling_rate))
        for i in range(count):
            event[i * gap: i * gap + len(decay)] = decay * rng.choice([-1.0, 1.0])
        return event
    elif kind == "burst":
        event = rng.standard_normal(seconds(0.08, 0.25))
    elif kind == "hum":
        t = np.arange(seconds(0.3, 0.6)) / sampling_rate
        f = rng.uniform(90, 130)
        event = sum(np.sin(2 * np.pi * f * h * t + rng.uniform(0, 2 * np.pi)) / h for h in range(1, 5))
    else:
        raise UsageError(f"unknown event {kind!r}; events: {DEFAULT_EVENTS}")
    event = event * _fade(len(event), sampling_rate)
    return event / (np.abs(event).max() + 1e-12)


def _make_event_clip(events: Sequence[str], rng: np.random.Generator, sampling_rate: int,
                     clip_seconds: float) -> tuple[np.ndarray, list[str]]:
    """A clip of 1-3 distinct events at random times over pink or white background noise; its labels (in `events` order)."""
    n = int(round(clip_seconds * sampling_rate))
    colour = ("white", "pink")[rng.integers(2)]
    clip = colored_noise(rng, n, NOISE_COLOURS[colour]) * rng.uniform(*BACKGROUND_STD)
    count = int(rng.integers(EVENTS_PER_CLIP[0], min(EVENTS_PER_CLIP[1], len(events)) + 1))
    chosen = sorted(rng.choice(len(events), size=count, replace=False).tolist())
    for index in chosen:
        event = synth_event(events[index], rng, sampling_rate)[:n] * rng.uniform(*EVENT_PEAK)
        start = int(rng.integers(0, n - len(event) + 1))
        clip[start: start + len(event)] += event
    return np.clip(clip, -1.0, 1.0).astype(np.float32), [events[i] for i in chosen]


def generate_event_dataset(
    output_dir,
    events: Sequence[str] = DEFAULT_EVENTS,
    num_clips: int = 400,
    sampling_rate: int = 16000,
    clip_seconds: float = 1.0,
    seed: int = 0,
) -> Path:
    """Write (or find already written) the multi-label event set: wavs, `labels.csv`, `labels.jsonl`.

    Idempotent like `generate_keyword_dataset`. Train on it with `--train_file OUTPUT_DIR/labels.csv
    --problem_type multi_label_classification`, and keep `--max_length_seconds` >= `clip_seconds`:
    a random crop could cut an event out while its label stays.
    """
    events = list(events)
    unknown = [e for e in events if e not in DEFAULT_EVENTS]
    if not events or unknown or len(set(events)) != len(events):
        raise UsageError(f"events must be distinct names among {DEFAULT_EVENTS}, got {events}")
    if num_clips < 1 or sampling_rate < 1 or clip_seconds < 0.7:
        raise UsageError("num_clips and sampling_rate must be positive and clip_seconds at least 0.7 "
                         "(room for the longest events)")
    root = Path(output_dir)
    params = dict(kind="events", events=events, num_clips=int(num_clips), sampling_rate=int(sampling_rate),
                  clip_seconds=float(clip_seconds), seed=int(seed), generator_version=GENERATOR_VERSION)
    info_path = root / INFO_FILE
    names = [f"audio/events_{i:04d}.wav" for i in range(num_clips)]
    if info_path.exists():
        info = json.loads(info_path.read_text())
        if {k: info.get(k) for k in params} == params and all((root / name).exists() for name in names):
            return root
        info_path.unlink()  # first, so that an interrupted run never looks finished
    (root / "audio").mkdir(parents=True, exist_ok=True)
    for old in (root / "audio").glob("events_[0-9][0-9][0-9][0-9].wav"):
        old.unlink()

    rows = []
    for index, name in enumerate(names):
        rng = np.random.default_rng([int(seed), index])
        clip, labels = _make_event_clip(events, rng, sampling_rate, clip_seconds)
        sf.write(root / name, clip, sampling_rate, subtype="PCM_16")
        rows.append((name, labels))
    (root / "labels.csv").write_text("path,labels\n" + "".join(f"{p},{';'.join(l)}\n" for p, l in rows))
    (root / "labels.jsonl").write_text("".join(json.dumps({"path": p, "labels": l}) + "\n" for p, l in rows))
    counts = {event: sum(event in labels for _, labels in rows) for event in events}
    (root / "README.md").write_text(
        f"# hfspeech demo sound events (multi-label)\n\n{num_clips} clips of {clip_seconds} s at {sampling_rate} Hz, "
        f"each with {EVENTS_PER_CLIP[0]}-{EVENTS_PER_CLIP[1]} distinct events among {', '.join(events)} at random "
        f"times (peaks {EVENT_PEAK[0]}-{EVENT_PEAK[1]}) over white or pink background noise (std "
        f"{BACKGROUND_STD[0]}-{BACKGROUND_STD[1]}). Labels: `labels.csv` (`;`-separated) and `labels.jsonl` "
        f"(JSON lists). Generated by `hfspeech.data.demo.generate_event_dataset`, seed {seed}. License: generated.\n")
    info = dict(params, counts=counts, label_prevalence=sum(counts.values()) / (num_clips * len(events)))
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    return root


def generate_noise_files(output_dir, n: int = 5, seconds: float = 3.0, sampling_rate: int = 16000,
                         seed: int = 0) -> list[Path]:
    """Write ``n`` background-noise wavs (white, pink, brown, blue, mains hum, then repeats).

    Small and deterministic, for exercising the noise-folder augmentation without a noise corpus.
    """
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    kinds = [*NOISE_COLOURS, "hum"]
    num = int(round(seconds * sampling_rate))
    paths = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        if kind == "hum":  # 50 Hz mains with harmonics over a little white noise
            t = np.arange(num) / sampling_rate
            phases = rng.uniform(0, 2 * np.pi, size=5)
            noise = sum(np.sin(2 * np.pi * 50 * h * t + phases[h - 1]) / h for h in range(1, 6))
            noise = noise + 0.05 * rng.standard_normal(num)
        else:
            noise = colored_noise(rng, num, NOISE_COLOURS[kind])
        path = root / f"noise_{i:02d}_{kind}.wav"
        sf.write(path, (0.5 * noise / np.abs(noise).max()).astype(np.float32), sampling_rate,
                 subtype="PCM_16")
        paths.append(path)
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hfspeech.data.demo",
                                     description="Generate an offline data set: espeak-ng keywords "
                                     "(keyword spotting) or languages (spoken-language ID), or synthetic sound "
                                     "events (multi-label, no espeak-ng needed).")
    parser.add_argument("output_dir")
    parser.add_argument("--kind", choices=["keywords", "languages", "events"], default="keywords")
    parser.add_argument("--num-clips", type=int, default=400, help="events: number of clips (default 400)")
    parser.add_argument("--events", nargs="+", default=list(DEFAULT_EVENTS), help="events: the event types")
    parser.add_argument("--clips-per-class", "--clips-per-keyword", dest="clips", type=int, default=None,
                        help="clips per keyword (default 60) or per language (default 40)")
    parser.add_argument("--keywords", nargs="+", default=list(DEFAULT_KEYWORDS))
    parser.add_argument("--languages", nargs="+", default=list(DEFAULT_LANGUAGES),
                        help="espeak-ng language voices (espeak-ng --voices lists them)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampling-rate", type=int, default=16000)
    parser.add_argument("--clip-seconds", type=float, default=None,
                        help="default 1.0 (keywords, events), 2.0 (languages)")
    parser.add_argument("--noise-files", metavar="DIR",
                        help="also write a few background-noise wavs to DIR")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    common = dict(sampling_rate=args.sampling_rate, seed=args.seed, progress=not args.no_progress)
    if args.kind == "events":
        root = generate_event_dataset(args.output_dir, events=args.events, num_clips=args.num_clips,
                                      sampling_rate=args.sampling_rate, clip_seconds=args.clip_seconds or 1.0,
                                      seed=args.seed)
    elif args.kind == "keywords":
        root = generate_keyword_dataset(args.output_dir, keywords=args.keywords, clips_per_keyword=args.clips or 60,
                                        clip_seconds=args.clip_seconds or 1.0, **common)
    else:
        root = generate_language_dataset(args.output_dir, languages=args.languages,
                                         clips_per_language=args.clips or 40,
                                         clip_seconds=args.clip_seconds or 2.0, **common)
    print(f"{args.kind} dataset: {root}")
    if args.noise_files:
        generate_noise_files(args.noise_files, sampling_rate=args.sampling_rate, seed=args.seed)
        print(f"noise files: {args.noise_files}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
