"""Sliding windows over audio that arrives in pieces, in bounded memory, cut exactly where `split_windows`
cuts the whole waveform.

`WindowSlicer` keeps only the last window's samples (a ring buffer of one window): a ten-hour file or an
endless stream needs the same memory as a one-second clip. Windows start every `hop` samples; at the end
one more window ends at the last sample (when the regular ones missed the end), and a stream shorter than
a window gives one short window: the rules of `hfspeech.inference.classifier.split_windows`, so offline,
chunked and streaming inference see the very same windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


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
                "labels": [label for label, _ in top], "scores": [score for _, score in top],
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
