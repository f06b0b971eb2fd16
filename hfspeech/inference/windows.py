"""Sliding windows over audio that arrives in pieces, in bounded memory, cut exactly where `split_windows`
cuts the whole waveform.

`WindowSlicer` keeps only the last window's samples (a ring buffer of one window): a ten-hour file or an
endless stream needs the same memory as a one-second clip. Windows start every `hop` samples; at the end
one more window ends at the last sample (when the regular ones missed the end), and a stream shorter than
a window gives one short window (`window_starts` states the rule). Offline, chunked, batched, served and
streaming inference all cut by that rule (`WindowSlicer`; a waveform already in memory, `slice_waveform`, as
views of it), so they see the very same windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from hfspeech.data.audio import seconds_to_samples
from hfspeech.data.samples import trimmed_as_trained
from hfspeech.errors import UsageError


def finite_or_none(score: float) -> Optional[float]:
    """`score`, or None (JSON's null) where NaN or infinite (a model whose weights are NaN): a bare `NaN` is no
    JSON (JSON.parse refuses it; Starlette's response refused it with a 500)."""
    return score if math.isfinite(score) else None


@dataclass
class WindowResult:
    """One window's class scores (None when voice-activity gating skipped it, so the model never saw it)."""

    index: int
    start: float  # seconds from the start of the audio
    end: float
    scores: Optional[np.ndarray]
    active_labels: list[str] = field(default_factory=list)
    skipped: bool = False  # below the energy gate: not sent to the model
    inactive: bool = False  # classified as silence by the model (`--vad model`)
    events: list = field(default_factory=list)  # `LabelEvent`s that fired at this window (streaming)

    def top(self, id2label: dict[int, str], k: int = 3) -> list[tuple[str, float]]:
        if self.scores is None:
            return []
        order = np.argsort(-self.scores, kind="stable")[: max(1, min(k, len(self.scores)))]
        return [(id2label[int(i)], float(self.scores[i])) for i in order]

    def to_dict(self, id2label: dict[int, str], k: int = 3) -> dict:
        top = self.top(id2label, k)
        return {"index": self.index, "start": round(self.start, 6), "end": round(self.end, 6),
                "labels": [label for label, _ in top], "scores": [finite_or_none(score) for _, score in top],
                "active_labels": self.active_labels, "skipped": self.skipped, "inactive": self.inactive}


class WindowSlicer:
    """Push samples in chunks of any size; get back `(start_sample, window)` as each window completes.

    Memory: a ring buffer of `window` samples, whatever the stream's length and the chunks' sizes.
    """

    def __init__(self, window: int, hop: int):
        if window < 1 or hop < 1:
            raise ValueError(f"window and hop must be at least one sample, got window={window}, hop={hop}")
        self.window, self.hop = int(window), int(hop)
        self.ring = np.zeros(self.window, dtype=np.float32)
        self.head = 0  # where the next sample goes; the oldest sample once the ring is full
        self.written = 0  # samples pushed so far
        self.next_start = 0
        self.last_start: Optional[int] = None

    def push(self, samples: np.ndarray) -> list[tuple[int, np.ndarray]]:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        windows, position = [], 0
        while position < samples.size:
            # Up to the end of the next window, so that it is read out before later samples overwrite it.
            take = min(samples.size - position, self.next_start + self.window - self.written)
            self._write(samples[position : position + take])
            position += take
            if self.written == self.next_start + self.window:
                windows.append((self.next_start, self._contents()))
                self.last_start, self.next_start = self.next_start, self.next_start + self.hop
        return windows

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """The last window, ending at the last sample, when the regular windows did not reach it (or a
        stream shorter than one window: all of it)."""
        if self.written == 0:
            return []
        if self.last_start is None:
            return [(0, self._contents()[-self.written :])]
        if self.last_start + self.window < self.written:
            self.last_start = self.written - self.window
            return [(self.last_start, self._contents())]
        return []

    def _write(self, samples: np.ndarray) -> None:
        self.written += samples.size
        if samples.size >= self.window:
            self.ring[:] = samples[-self.window :]
            self.head = 0
            return
        first = min(samples.size, self.window - self.head)
        self.ring[self.head : self.head + first] = samples[:first]
        self.ring[: samples.size - first] = samples[first:]
        self.head = (self.head + samples.size) % self.window

    def _contents(self) -> np.ndarray:
        """The last `min(written, window)` samples, oldest first (a copy)."""
        return np.concatenate([self.ring[self.head :], self.ring[: self.head]])


def window_sizes(sampling_rate: int, window_seconds: float, hop_seconds: Optional[float] = None) -> tuple[int, int]:
    """(window, hop) in samples; the hop is half a window unless given (None). A length that is not positive
    is a `UsageError`: it used to become one sample (a window of -1 s gave one-sample windows and flat scores,
    a hop of -1 s a window per sample) or, for 0, the default, without a word. So is one that is infinite
    (it was an OverflowError traceback) or shorter than one sample (it was made one sample: a window of
    1e-5 s classified every sample alone, flat scores, without a word)."""
    for flag, seconds in (("window_seconds", window_seconds), ("hop_seconds", hop_seconds)):
        if seconds is None:
            continue
        if not 0 < seconds < math.inf:
            raise UsageError(f"{flag} must be positive and finite, got {seconds}")
        if seconds_to_samples(seconds, sampling_rate) < 1:
            raise UsageError(f"{flag} {seconds} is shorter than one sample at {sampling_rate} Hz")
    window = seconds_to_samples(window_seconds, sampling_rate)
    hop = max(1, seconds_to_samples(window_seconds / 2 if hop_seconds is None else hop_seconds, sampling_rate))
    return window, hop


def check_windows_cover(window: int, hop: int, sampling_rate: int) -> None:
    """A `UsageError` when the hop is longer than the window (the `predict` and `stream` commands): the audio
    between two windows would never be classified, yet the file's scores and a stream's silence between
    events would read as if it had been. (The Python API allows it, for sparse sampling on purpose.)"""
    if hop > window:
        raise UsageError(f"--hop_seconds {hop / sampling_rate:g} is longer than the window ({window / sampling_rate:g}"
                         " s, --window_seconds): the audio between windows would not be classified; give a hop "
                         "no longer than the window")


def slice_waveform(waveform: np.ndarray, window: int, hop: int, offset: int = 0) -> list[tuple[int, np.ndarray]]:
    """`(start sample, window)` pairs of a waveform in memory, cut where `WindowSlicer` cuts a stream
    (`window_starts`). The windows are views of `waveform`: `WindowSlicer`'s copies held window / hop times the
    audio at once (an hour at a hop of a tenth of the window: 2.3 GB more for a 230 MB waveform, before any
    was scored), in `score_waveform` and in each request of `hfspeech serve`. `offset` is added to the starts:
    where `waveform` begins in the file (its leading silence trimmed: `data.samples.trimmed_as_trained`)."""
    if window < 1 or hop < 1:
        raise ValueError(f"window and hop must be at least one sample, got window={window}, hop={hop}")
    waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
    return [(offset + start, waveform[start : start + window]) for start in window_starts(waveform.size, window, hop)]


def clip_windows(waveform: np.ndarray, config, window: int, hop: int) -> list[tuple[int, np.ndarray]]:
    """`slice_waveform` of a whole clip at the model's rate, trimmed first as the model's training clips were
    (`data.samples.trimmed_as_trained`; untouched for a model trained untrimmed), starts counted in the clip as
    given: what `score_waveform` and each request of `hfspeech serve` score."""
    offset, waveform = trimmed_as_trained(np.asarray(waveform, dtype=np.float32).reshape(-1), config)
    return slice_waveform(waveform, window, hop, offset)


def split_windows(waveform: np.ndarray, sampling_rate: int, window_seconds: float,
                  hop_seconds: Optional[float] = None) -> list[np.ndarray]:
    """Overlapping windows (hop = half a window by default); the last one ends at the end of the clip."""
    return [piece for _, piece in slice_waveform(waveform, *window_sizes(sampling_rate, window_seconds, hop_seconds))]


def window_starts(num_samples: int, window: int, hop: int) -> list[int]:
    """Where the windows of `num_samples` samples start: every `hop`, plus one ending at the last sample when
    the regular ones miss it; a single window for a clip no longer than one."""
    if num_samples <= window:
        return [0]
    starts = list(range(0, num_samples - window + 1, hop))
    if starts[-1] + window < num_samples:
        starts.append(num_samples - window)
    return starts
