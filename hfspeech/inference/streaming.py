"""Live classification of audio that arrives in chunks: `StreamingClassifier(classifier).feed(chunk)`.

Chunks of any size (mono `[n]` or `[n, channels]`, at any sampling rate) are downmixed as `decode_audio`
downmixes, resampled in the stream (`soxr.ResampleStream`), and cut into the windows offline inference
cuts (`WindowSlicer`, a ring buffer of one window: bounded memory for an endless stream). Each complete
window is classified (in batches when a chunk completes several), so a stream gives the same window
scores as the whole recording classified offline.

Events: a label *event* fires when a label stays at or above its threshold for `min_windows` consecutive
windows (once per run; the run must break before the label can fire again). Thresholds are the model's
`config.label_thresholds` where it names a label, `threshold` for the others. With `offsets=True` (`hfspeech
stream`) each event also *ends* (`LabelEnded`): at the first window after it where the label is below its
threshold (or skipped, or inactive), the break that lets it fire again, so each event has one end; or at the end
of the stream (`ended_at_finish`). A sound event's onset and offset, where the `label` event alone gave when
the onset was confirmed.

Voice-activity gating (optional):
* `vad="energy"` (`EnergyVAD`): a window whose frames are not loud enough above an adaptive noise floor is
  not sent to the model at all (`stats.skipped`); it breaks every run.
* `vad="model"`: every window is classified, and one whose top label is a silence class (`silence_labels`,
  by default any of `SILENCE_LABELS` the model has, e.g. `_silence_` in Speech Commands) counts as inactive
  (`stats.inactive`): it breaks every run, and a silence class never fires an event. A model without such
  a class is an error (naming its labels), not a silent no-op.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from hfspeech.data.audio import StreamResampler, seconds_to_samples
from hfspeech.errors import UsageError
from hfspeech.inference.classifier import AudioClassifier
from hfspeech.models.scores import DEFAULT_THRESHOLD, label_thresholds
from hfspeech.inference.waveforms import check_count, check_sampling_rate, mono_samples
from hfspeech.inference.windows import WindowResult, WindowSlicer

SILENCE_LABELS = ("_silence_", "silence", "_background_noise_", "background", "noise_only")
VAD_MODES = ("none", "energy", "model")


@dataclass
class LabelEvent:
    """A label at or above its threshold in `windows` consecutive windows, from `start` to `end` (seconds);
    `score` is its mean score over those windows."""

    label: str
    start: float
    end: float
    score: float
    windows: int

    def to_dict(self) -> dict:
        return {"event": "label", **{k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}}


@dataclass
class LabelEnded(LabelEvent):
    """The end of a label event (`offsets=True`): `start` is the event's (its first window's start), `end` the end
    of the last window at or above the threshold (the offset), `score` the mean and `windows` the count over all
    the event's windows."""

    def to_dict(self) -> dict:
        return {**super().to_dict(), "event": "ended"}


@dataclass
class StreamStats:
    windows: int = 0  # all windows cut from the stream
    classified: int = 0  # sent to the model
    skipped: int = 0  # below the energy gate, never sent to the model
    inactive: int = 0  # classified as a silence class (`vad="model"`)
    events: int = 0
    samples: int = 0  # at the model's rate

    def to_dict(self) -> dict:
        return {"event": "end", **asdict(self)}


@dataclass
class EnergyVAD:
    """Frame energy against an adaptive noise floor.

    Each window is cut into `frame_seconds` frames; a frame is loud when its energy (dB re full scale) is
    at least `margin_db` above the noise floor and above `floor_db`. A window with at least
    `min_active_fraction` loud frames is active. The noise floor starts at `floor_db`, drops at once to a
    quieter window's 10th-percentile frame energy, and rises by at most `rise_db_per_second` of audio
    towards a louder one: steady background becomes the floor within seconds to a minute, while a sound
    that stops and starts keeps counting as active. (Decided before the floor is updated with the window.)
    """

    frame_seconds: float = 0.02
    margin_db: float = 12.0
    floor_db: float = -60.0
    rise_db_per_second: float = 1.0
    min_active_fraction: float = 0.1
    noise_db: Optional[float] = None

    def frame_energies_db(self, window: np.ndarray, sampling_rate: int) -> np.ndarray:
        frame = max(1, seconds_to_samples(self.frame_seconds, sampling_rate))
        count = max(1, len(window) // frame)
        frames = np.asarray(window[: count * frame], dtype=np.float64)
        if frames.size == 0:
            frames = np.asarray(window, dtype=np.float64)
        power = np.square(frames.reshape(count, -1)).mean(axis=1) if frames.size else np.zeros(1)
        return 10.0 * np.log10(power + 1e-12)

    def is_active(self, window: np.ndarray, sampling_rate: int, advance_seconds: float) -> bool:
        """Decide for one window, then update the noise floor; `advance_seconds`: audio since the last window."""
        energies = self.frame_energies_db(window, sampling_rate)
        noise = self.floor_db if self.noise_db is None else self.noise_db
        gate = max(noise + self.margin_db, self.floor_db)
        active = float(np.mean(energies >= gate)) >= self.min_active_fraction
        quiet = float(np.percentile(energies, 10))
        self.noise_db = quiet if quiet < noise else noise + min(quiet - noise, self.rise_db_per_second * advance_seconds)
        return active


def _first_non_finite_frame(chunk) -> int:
    """The index of a refused chunk's first frame holding a NaN or infinity; 0 when it has none (another problem:
    a channels-first shape, a level too loud) or is not an array of numbers at all."""
    try:
        values = np.asarray(chunk, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
    except (TypeError, ValueError, RuntimeError):  # a string, a ragged list, a 0-d value, a tensor on a GPU
        return 0
    return int(bad[0]) if bad.size else 0


class StreamingClassifier:
    """Classify a stream window by window: `feed(chunk) -> list[WindowResult]`, `finish()` at the end of the
    stream (flushes the resampler; the last window ends at the last sample, as offline), or
    `process(chunks)` for an iterable. Events that fire at a window are in its `WindowResult.events`.
    `sampling_rate=` (or `input_rate=`, its older name): the chunks' rate, as in `classify_waveform`.
    `offsets=True`: a `LabelEnded` joins the events of the window that ends a label event, and `finish()` puts
    those of the events still open in `ended_at_finish` (it may have no window left to put them on).
    `source`: what a refused chunk's error names (`hfspeech stream`: stdin or the followed file)."""

    def __init__(self, classifier: AudioClassifier, window_seconds: Optional[float] = None,
                 hop_seconds: Optional[float] = None, input_rate: Optional[int] = None,
                 threshold: float = DEFAULT_THRESHOLD, min_windows: int = 1, vad: Optional[str | EnergyVAD] = None,
                 silence_labels: Optional[Sequence[str]] = None, sampling_rate: Optional[int] = None,
                 offsets: bool = False, source: str = "stream"):
        # As `hfspeech stream --min_windows / --threshold` and the server check them: 1.5 windows was taken for 1,
        # a threshold of 2 (or 50, a percentage) never fired and -1 fired every label at every window.
        min_windows = check_count("min_windows", min_windows, "windows")
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 <= threshold <= 1:
            raise UsageError(f"threshold must be a score between 0 and 1, got {threshold!r}")
        self.classifier = classifier
        self.rate = classifier.sampling_rate
        self.window, self.hop = classifier.window_sizes(window_seconds, hop_seconds)
        self.slicer = WindowSlicer(self.window, self.hop)
        self.input_rate = self._input_rate(input_rate, sampling_rate)
        self.resample = StreamResampler(self.input_rate, self.rate)
        self.source, self.input_frames = source, 0  # what a refused chunk's error names, and where it was
        self.id2label = classifier.id2label
        self.thresholds = label_thresholds(classifier.config, threshold)
        self.min_windows = int(min_windows)
        if vad not in (None, *VAD_MODES) and not isinstance(vad, EnergyVAD):
            raise ValueError(f"vad must be one of {VAD_MODES} or an EnergyVAD, got {vad!r}")
        self.energy_vad = vad if isinstance(vad, EnergyVAD) else EnergyVAD() if vad == "energy" else None
        self.silence_ids = self._silence_ids(silence_labels) if vad == "model" else set()
        self.run_lengths = np.zeros(len(self.id2label), dtype=np.int64)
        self.run_sums = np.zeros(len(self.id2label), dtype=np.float64)
        self.run_starts = np.zeros(len(self.id2label), dtype=np.float64)
        self.run_ends = np.zeros(len(self.id2label), dtype=np.float64)  # the end of each run's last window
        self.offsets, self.ended_at_finish = bool(offsets), []
        self.stats = StreamStats()
        self.finished = False

    def _input_rate(self, input_rate: Optional[int], sampling_rate: Optional[int]) -> int:
        """The chunks' rate. `sampling_rate=` is the spelling `classify_waveform` and the pipeline use (here it was
        a bare TypeError); `input_rate=` still works; both given must agree. None: the model's rate (0 used to
        mean that too, and a negative rate was soxr's error)."""
        rates = {name: check_sampling_rate(rate, name) for name, rate in
                 (("input_rate", input_rate), ("sampling_rate", sampling_rate)) if rate is not None}
        if len(set(rates.values())) > 1:
            raise UsageError(f"input_rate={rates['input_rate']} and sampling_rate={rates['sampling_rate']} disagree: "
                             "pass one of them (sampling_rate=, the rate of the chunks)")
        return next(iter(rates.values()), self.rate)

    def _silence_ids(self, silence_labels: Optional[Sequence[str]]) -> set[int]:
        wanted = list(silence_labels) if silence_labels else list(SILENCE_LABELS)
        ids = {i for i, label in self.id2label.items() if label in wanted}
        if not ids:
            raise ValueError(f"vad='model' needs a silence class, but the model's labels "
                             f"{sorted(self.id2label.values())} include none of {wanted} (name yours: "
                             "--silence_label LABEL, or silence_labels=[...] in Python)")
        return ids

    def feed(self, chunk: np.ndarray) -> list[WindowResult]:
        """Samples `[n]` or `[n, channels]` at the input rate: float, or integer PCM (int16, int32, uint8)
        scaled to [-1, 1] (`mono_samples`; only int16 was, so an int32 stream passed the energy gate however
        quiet it was); a channels-first or NaN chunk is a `UsageError` naming `source` and the time in the stream
        (`_checked_mono`)."""
        if self.finished:
            raise RuntimeError("the stream is finished; start a new StreamingClassifier")
        mono = self._checked_mono(chunk)
        self.input_frames += mono.size
        samples = self.resample(mono)
        self.stats.samples += samples.size
        return self._classify(self.slicer.push(samples))

    def _checked_mono(self, chunk) -> np.ndarray:
        """`mono_samples` of a chunk, or a `UsageError` that names the source and the stream time (at the input
        rate) of its first NaN or infinite frame, else of its first frame: "chunk: audio contains NaN ..." named
        nothing a user knows, nor where in an hour of recording the bad samples were. The stream is unchanged by
        a refused chunk: `finish()` still ends it as if the input had ended before it."""
        try:
            return mono_samples(chunk, "chunk")
        except UsageError as error:
            problem = str(error).removeprefix("chunk: ")
            seconds = (self.input_frames + _first_non_finite_frame(chunk)) / self.input_rate
            raise UsageError(f"{self.source} at {seconds:.1f} s: {problem}") from None

    def finish(self) -> list[WindowResult]:
        if self.finished:
            return []
        tail = self.resample(np.zeros(0, np.float32), last=True)
        self.stats.samples += tail.size
        windows = self.slicer.push(tail) + self.slicer.finish()
        self.finished = True
        results = self._classify(windows)
        self.ended_at_finish = self._ended(np.ones(len(self.id2label), dtype=bool))
        return results

    def process(self, chunks: Iterable[np.ndarray]) -> Iterator[WindowResult]:
        for chunk in chunks:
            yield from self.feed(chunk)
        yield from self.finish()

    def _classify(self, windows: list[tuple[int, np.ndarray]]) -> list[WindowResult]:
        if not windows:
            return []
        first = self.stats.windows
        self.stats.windows += len(windows)
        gated = [self._passes_energy_gate(start, waveform) for start, waveform in windows]
        to_model = [w for w, keep in zip(windows, gated) if keep]
        scored = iter(self.classifier.score_windows(to_model))
        self.stats.classified += len(to_model)
        results = []
        for offset, ((start, waveform), keep) in enumerate(zip(windows, gated)):
            if keep:
                result = next(scored)
                result.index = first + offset
            else:
                self.stats.skipped += 1
                result = WindowResult(first + offset, start / self.rate, (start + len(waveform)) / self.rate, None,
                                      skipped=True)
            self._update_runs(result)
            results.append(result)
        return results

    def _passes_energy_gate(self, start: int, waveform: np.ndarray) -> bool:
        if self.energy_vad is None:
            return True
        return self.energy_vad.is_active(waveform, self.rate, min(self.hop, len(waveform)) / self.rate)

    def _update_runs(self, result: WindowResult) -> None:
        if result.scores is not None and self.silence_ids and int(np.argmax(result.scores)) in self.silence_ids:
            result.inactive = True
            self.stats.inactive += 1
        scores = None if result.inactive else result.scores  # a skipped or inactive window breaks every run
        above = np.zeros(len(self.id2label), dtype=bool) if scores is None else scores >= self.thresholds
        above[list(self.silence_ids)] = False
        result.events.extend(self._ended(~above))  # before the runs that break here are reset
        self.run_starts[above & (self.run_lengths == 0)] = result.start
        self.run_ends[above] = result.end
        self.run_lengths = np.where(above, self.run_lengths + 1, 0)
        self.run_sums = np.where(above, self.run_sums + (0.0 if scores is None else scores), 0.0)
        for i in np.flatnonzero(self.run_lengths == self.min_windows):
            result.events.append(LabelEvent(self.id2label[int(i)], float(self.run_starts[i]), result.end,
                                            float(self.run_sums[i] / self.min_windows), self.min_windows))
            self.stats.events += 1

    def _ended(self, stopping: np.ndarray) -> list[LabelEnded]:
        """With `offsets`, the ends of the events (runs of at least `min_windows`) of the labels `stopping` here."""
        if not self.offsets:
            return []
        return [LabelEnded(self.id2label[int(i)], float(self.run_starts[i]), float(self.run_ends[i]),
                           float(self.run_sums[i] / self.run_lengths[i]), int(self.run_lengths[i]))
                for i in np.flatnonzero(stopping & (self.run_lengths >= self.min_windows))]
