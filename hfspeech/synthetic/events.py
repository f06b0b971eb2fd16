"""A *multi-label* sound-event data set, made without espeak-ng.

Each clip mixes 1-3 synthetic events (beeps, chirps, clicks, noise bursts, hum) at random times over
background noise, and a manifest lists each clip's labels (``labels.csv`` with ``;``-separated labels, and the
same in ``labels.jsonl`` as JSON lists)::

    output_dir/audio/events_<nnnn>.wav
    output_dir/labels.csv          # path,labels    e.g. audio/events_0007.wav,beep;hum
    output_dir/labels.jsonl        # {"path": ..., "labels": ["beep", "hum"]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from hfspeech.errors import UsageError, writing_to
from hfspeech.synthetic.reuse import GENERATOR_VERSION, GeneratedFolder
from hfspeech.synthetic.signals import NOISE_COLOURS, colored_noise, write_pcm16

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


def _clicks(rng: np.random.Generator, sampling_rate: int) -> np.ndarray:
    """3-6 decaying clicks of random sign, 30-60 ms apart (no fade: the clicks are the event)."""
    count, gap = int(rng.integers(3, 7)), int(rng.uniform(0.03, 0.06) * sampling_rate)
    event = np.zeros(count * gap)
    decay = np.exp(-np.arange(int(0.003 * sampling_rate)) / (0.0007 * sampling_rate))
    for i in range(count):
        event[i * gap: i * gap + len(decay)] = decay * rng.choice([-1.0, 1.0])
    return event


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
        return _clicks(rng, sampling_rate)
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


def _check_event_args(events: list[str], num_clips: int, sampling_rate: int, clip_seconds: float) -> None:
    unknown = [e for e in events if e not in DEFAULT_EVENTS]
    if not events or unknown or len(set(events)) != len(events):
        raise UsageError(f"events must be distinct names among {DEFAULT_EVENTS}, got {events}")
    if num_clips < 1 or sampling_rate < 1 or clip_seconds < 0.7:
        raise UsageError("num_clips and sampling_rate must be positive and clip_seconds at least 0.7 "
                         "(room for the longest events)")


def _write_manifests(root: Path, rows: list[tuple[str, list[str]]]) -> None:
    (root / "labels.csv").write_text("path,labels\n" + "".join(f"{p},{';'.join(l)}\n" for p, l in rows),
                                     encoding="utf-8")
    (root / "labels.jsonl").write_text("".join(json.dumps({"path": p, "labels": l}) + "\n" for p, l in rows),
                                       encoding="utf-8")


def _readme(events: list[str], num_clips: int, sampling_rate: int, clip_seconds: float, seed: int) -> str:
    return (f"# hfspeech demo sound events (multi-label)\n\n{num_clips} clips of {clip_seconds} s at {sampling_rate} "
            f"Hz, each with {EVENTS_PER_CLIP[0]}-{EVENTS_PER_CLIP[1]} distinct events among {', '.join(events)} at "
            f"random times (peaks {EVENT_PEAK[0]}-{EVENT_PEAK[1]}) over white or pink background noise (std "
            f"{BACKGROUND_STD[0]}-{BACKGROUND_STD[1]}). Labels: `labels.csv` (`;`-separated) and `labels.jsonl` "
            f"(JSON lists). Generated by `hfspeech.synthetic.events.generate_event_dataset`, seed {seed}. "
            "License: generated.\n")


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
    _check_event_args(events, num_clips, sampling_rate, clip_seconds)
    root = Path(output_dir)
    params = dict(kind="events", events=events, num_clips=int(num_clips), sampling_rate=int(sampling_rate),
                  clip_seconds=float(clip_seconds), seed=int(seed), generator_version=GENERATOR_VERSION)
    names = [f"audio/events_{i:04d}.wav" for i in range(num_clips)]
    folder = GeneratedFolder(root, params, [root / name for name in names], kind="events")
    if folder.is_finished():
        return root
    folder.start_over()  # a folder of the user's (or another kind's) refused first, as demo-data's

    rows = []
    with writing_to(root, "make room and run it again"):  # a full disk: one line naming the folder, as demo-data's
        (root / "audio").mkdir(parents=True, exist_ok=True)
        for old in (root / "audio").glob("events_[0-9][0-9][0-9][0-9].wav"):
            old.unlink()
        for index, name in enumerate(names):
            clip, labels = _make_event_clip(events, np.random.default_rng([int(seed), index]), sampling_rate,
                                            clip_seconds)
            write_pcm16(root / name, clip, sampling_rate)
            rows.append((name, labels))
        _write_manifests(root, rows)
        (root / "README.md").write_text(_readme(events, num_clips, sampling_rate, clip_seconds, seed),
                                        encoding="utf-8")
    counts = {event: sum(event in labels for _, labels in rows) for event in events}
    folder.finish(counts=counts, label_prevalence=sum(counts.values()) / (num_clips * len(events)))
    return root
