"""One-call inference on files: `AudioClassifier.from_pretrained(model).classify_file(path)`.

Scores first, labels after. `score_file` / `score_waveform` give a file's id-ordered class scores
(`models.scores.scores_from_logits`: softmax, or a sigmoid per label for a multi-label model) and its
windows; `classify_file` / `classify_waveform` are that plus the top-k labels and, for a multi-label model,
the labels at or above their thresholds (`config.label_thresholds`, read once per classifier), listed past k too.

Files longer than the model's window (the clip length it was trained on, saved in its config as
`max_length_seconds`) are cut into overlapping windows (`inference.windows.WindowSlicer`), classified in
batches, and the windows' scores averaged (or their maximum taken, or their votes counted), so a
minute-long recording gets one answer from a model trained on 1 s clips. Files are read in chunks and
their windows batched across files (`inference.batch.score_files`), in bounded memory.

The model runs in PyTorch, or exported in onnxruntime or TorchScript (`inference.backends`, chosen by
`inference.loading.load_backend`); everything above the logits is numpy and shared, so an ONNX export
runs without importing torch or transformers, which is most of a cold start.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import numpy as np

from hfspeech.data.audio import DEFAULT_CHUNK_SECONDS
from hfspeech.errors import UsageError
from hfspeech.features.waveform import ZERO_LENGTH
from hfspeech.inference.backends import Backend, TorchBackend
from hfspeech.inference.outputs import with_every_active_label
from hfspeech.inference.waveforms import check_count, clip_list, mono_samples, waveform_at_rate
from hfspeech.inference.windows import WindowResult, WindowSlicer, clip_windows, finite_or_none, window_sizes
from hfspeech.models.inputs import (batch_indices, extract_features, min_samples, padded_to, pads_with_attention_mask,
                                    shares_padded_batches, window_seconds_of)
from hfspeech.models.scores import active_labels, is_multi_label, label_thresholds, scores_from_logits

logger = logging.getLogger(__name__)

AGGREGATIONS = ("mean", "max", "vote")
# One model loads at a time: threads loading at once (a web app's workers) raced transformers' lazy imports
LOADING = threading.Lock()  # ("cannot import name 'AutoFeatureExtractor' from 'transformers'")
VOTE_SHARE = 0.5  # with `vote`, a multi-label file's label is active when at least half its windows had it
NOT_FINITE_WARNING = "warning: the model gave NaN or infinite scores (are its weights NaN?); JSON has null for them"


def aggregate_scores(scores: np.ndarray, mode: str, config, thresholds: Optional[np.ndarray] = None) -> np.ndarray:
    """Windows' scores `[N, num_labels]` -> one score per label for the whole file.

    `mean` / `max`: of each label's score over the windows. `vote`: the fraction of windows that voted for
    each label: its top label for a single-label model, each label at or above its threshold for a
    multi-label one (a label is then active for the file when at least half the windows had it).
    """
    if mode not in AGGREGATIONS:
        raise ValueError(f"aggregate must be one of {AGGREGATIONS}, got {mode!r}")
    scores = np.asarray(scores, dtype=np.float32).reshape(-1, len(config.id2label))
    if len(scores) == 0:
        return np.zeros(scores.shape[1], dtype=np.float32)
    if mode == "mean":
        return scores.mean(axis=0)
    if mode == "max":
        return scores.max(axis=0)
    if is_multi_label(config):
        thresholds = label_thresholds(config) if thresholds is None else thresholds
        return (scores >= thresholds).mean(axis=0).astype(np.float32)
    return (np.bincount(scores.argmax(axis=1), minlength=scores.shape[1]) / len(scores)).astype(np.float32)


def decision_thresholds(thresholds: np.ndarray, aggregate: str) -> np.ndarray:
    """The cut a multi-label file's aggregated scores are read at: the per-label `thresholds`, except with `vote`,
    whose scores are shares of windows (the thresholds applied to shares gave other labels). The one rule for
    `AudioClassifier.prediction` and `hfspeech evaluate`."""
    return np.full_like(thresholds, VOTE_SHARE) if aggregate == "vote" else thresholds


def file_path(path) -> str:
    """`path` as a string; anything but a path (an array, bytes) is a `UsageError` that points to the waveform
    methods, where it used to be reported as a file named after its repr that was not found."""
    if not isinstance(path, (str, os.PathLike)):
        raise UsageError(f"expected a file path, got {type(path).__name__}: for samples in memory use "
                         "score_waveform / classify_waveform(waveform, sampling_rate=...)")
    return str(path)


@dataclass
class FileScores:
    """A file's class scores `[num_labels]` in class-id order, aggregated over its windows."""

    path: str
    scores: np.ndarray
    windows: list[WindowResult] = field(default_factory=list, repr=False)
    aggregate: str = "mean"


@dataclass
class Prediction:
    """The top-k labels of one file, best first, aggregated over `num_windows` windows; for a multi-label model
    also the labels active for the file, listed after the top k where ranked past it. `windows`: the timeline."""

    path: str
    labels: list[str]
    scores: list[float]
    num_windows: int
    active_labels: list[str] = field(default_factory=list)
    aggregate: str = "mean"
    windows: list[WindowResult] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        return {"path": self.path, "num_windows": self.num_windows, "aggregate": self.aggregate,
                "predictions": [{"label": l, "score": finite_or_none(s)} for l, s in zip(self.labels, self.scores)],
                "active_labels": self.active_labels}


class AudioClassifier:
    """A model (or an exported one) and its feature extractor, ready to score waveforms and files."""

    def __init__(self, model, feature_extractor, device=None, batch_size: int = 16):
        """`model`: a transformers model, run in PyTorch on `device` (a `torch.device`), or a backend from
        `hfspeech.inference.backends` (`OnnxBackend`, `TorchScriptBackend`), or any object with the same
        `config` and `logits(inputs)`."""
        exported = callable(getattr(model, "logits", None))
        if exported and device is not None and str(device) not in ("cpu", "-1"):  # they run on the CPU only
            logger.warning("device=%s ignored: the %s backend runs on the CPU", device, getattr(model, "name", "given"))
        self.backend: Backend = model if exported else TorchBackend(model, device)
        self.config = self.backend.config
        self.feature_extractor = feature_extractor
        self.batch_size = check_count("batch_size", batch_size, "windows")
        self.sampling_rate = int(feature_extractor.sampling_rate)
        self.id2label = {int(i): label for i, label in self.config.id2label.items()}
        self._thresholds: tuple = (None, None)  # (config, its thresholds)
        self.said_not_finite = False  # `NOT_FINITE_WARNING` is said once per classifier (a run), not per window

    @classmethod
    def from_pretrained(cls, name_or_path: str, device=None, trust_remote_code: bool = False,
                        backend: Optional[str] = None, untrained: str = "warn", dtype=None,
                        **kwargs) -> "AudioClassifier":
        """A training run's folder (or Hub id) runs in PyTorch; a `.onnx` / `.pt` file, or an export folder
        (`hfspeech export`) without PyTorch weights, runs in onnxruntime / TorchScript. `backend`
        (`"pytorch"`, `"onnx"`, `"torchscript"`) forces the choice for a folder. A checkpoint whose head was
        never trained is warned of in one line, or refused with `untrained="error"` (`loading.check_trained`).
        A `device` this machine lacks is refused before loading, as `--device` is (`loading.load_backend`).
        `dtype` (`torch.bfloat16`, ...) goes to transformers' `from_pretrained`, as in a transformers notebook."""
        from hfspeech.inference.loading import load_backend

        with LOADING:
            model, feature_extractor = load_backend(name_or_path, backend, trust_remote_code, untrained, dtype, device)
        return cls(model, feature_extractor, device=device, **kwargs)

    @property
    def thresholds(self) -> np.ndarray:
        """Per-label thresholds in id order, read from the config once (again only if the config is replaced)."""
        config, thresholds = self._thresholds
        if config is not self.config:
            self._thresholds = (self.config, label_thresholds(self.config))
        return self._thresholds[1]

    @property
    def window_seconds(self) -> float:
        return window_seconds_of(self.config, self.feature_extractor)  # a checkpoint made elsewhere: its extractor's

    @property
    def pads_with_attention_mask(self) -> bool:
        """Whether clips of different lengths can share a padded batch (`models.inputs.pads_with_attention_mask`)."""
        return pads_with_attention_mask(self.config, self.feature_extractor)

    def _batches(self, waveforms: Sequence[np.ndarray]) -> Iterator[list[int]]:
        """Indices of the clips that run together: consecutive ones, or only equal lengths (see above)."""
        mixed = shares_padded_batches(self.config, self.feature_extractor)
        return batch_indices([len(waveform) for waveform in waveforms], self.batch_size, mixed)

    def logits(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Logits [N, num_labels] for mono waveforms at the model's sampling rate, in batches. Each is checked
        as `score_waveform` checks one (`mono_samples`: integer PCM scaled; empty or NaN clips refused, which
        some extractors turned into NaN scores and others into a torch dtype error)."""
        waveforms = [mono_samples(waveform, f"waveform {i}") for i, waveform in enumerate(clip_list(waveforms))]
        if empty := [i for i, waveform in enumerate(waveforms) if waveform.size == 0]:
            raise UsageError(f"waveform {empty[0]}: {ZERO_LENGTH}")
        output = np.zeros((len(waveforms), len(self.id2label)), dtype=np.float32)
        shortest = min_samples(self.config)  # a clip shorter than one encoder frame is padded with silence
        for indices in self._batches(waveforms):
            clips = [padded_to(waveforms[i], shortest) for i in indices]
            batch = extract_features(self.feature_extractor, clips, return_tensors="np")
            output[indices] = self.backend.logits(dict(batch))
        return output

    def predict_proba(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Class scores [N, num_labels] (`scores_from_logits`: softmax, or sigmoid for multi-label)."""
        return scores_from_logits(self.logits(waveforms), self.config)

    def window_sizes(self, window_seconds: Optional[float] = None,
                     hop_seconds: Optional[float] = None) -> tuple[int, int]:
        """(window, hop) in samples; the window defaults to the model's clip length."""
        return window_sizes(self.sampling_rate, self.window_seconds if window_seconds is None else window_seconds,
                            hop_seconds)

    def score_windows(self, windows: Sequence[tuple[int, np.ndarray]], first_index: int = 0) -> list[WindowResult]:
        """`(start sample, waveform)` pairs -> `WindowResult`s with scores and active labels."""
        scores = self.predict_proba([waveform for _, waveform in windows]) if windows else []
        return [self.window_result(first_index + i, start, len(waveform), row)
                for i, ((start, waveform), row) in enumerate(zip(windows, scores))]

    def window_result(self, index: int, start: int, length: int, scores: np.ndarray) -> WindowResult:
        """One scored window of `length` samples from sample `start`, with its active labels; every window scored
        (files, streams, serve) passes here, and the first with a NaN or infinite score is warned of, once."""
        if not self.said_not_finite and not np.isfinite(scores).all():
            self.said_not_finite = True
            logger.warning(NOT_FINITE_WARNING)
        return WindowResult(index, start / self.sampling_rate, (start + length) / self.sampling_rate, scores,
                            active_labels(scores, self.config, self.thresholds))

    def iter_windows(self, path: str, window_seconds: Optional[float] = None, hop_seconds: Optional[float] = None,
                     chunk_seconds: int = DEFAULT_CHUNK_SECONDS) -> Iterator[WindowResult]:
        """Scored windows of a file of any length, in order, read and classified chunk by chunk: memory is
        bounded by a chunk, a window and a batch, not by the file (a model trained on trimmed clips reads it twice:
        `batch.file_chunks`). The next chunks are decoded, and trimmed, in a thread (`batch.prefetched`)."""
        from hfspeech.inference.batch import file_chunks, prefetched, shifted

        slicer = WindowSlicer(*self.window_sizes(window_seconds, hop_seconds))
        pending: list[tuple[int, np.ndarray]] = []
        done = offset = 0
        for chunk in prefetched(file_chunks(file_path(path), self.sampling_rate, chunk_seconds, self.config)):
            offset = chunk.offset
            pending.extend(shifted(slicer.push(chunk.samples), offset))
            while len(pending) >= self.batch_size:
                batch, pending = pending[: self.batch_size], pending[self.batch_size :]
                yield from self.score_windows(batch, done)
                done += len(batch)
        pending.extend(shifted(slicer.finish(), offset))
        yield from self.score_windows(pending, done)

    def file_scores(self, name: str, windows: list[WindowResult], aggregate: str = "mean") -> FileScores:
        """Scored windows -> the file's scores (`aggregate_scores`)."""
        scored = np.stack([w.scores for w in windows if w.scores is not None]) if windows else \
            np.zeros((0, len(self.id2label)), dtype=np.float32)
        return FileScores(name, aggregate_scores(scored, aggregate, self.config, self.thresholds), windows, aggregate)

    def prediction(self, scored: FileScores, top_k: int = 5) -> Prediction:
        """A file's scores -> its top-k labels, best first (vote ties broken by the mean score), then each label active
        for it ranked past k, as predict and serve list them (`with_every_active_label`); and its active labels."""
        check_count("top_k", top_k, "labels")
        combined = scored.scores
        window_scores = [w.scores for w in scored.windows if w.scores is not None]
        tie_break = np.mean(window_scores, axis=0) if window_scores else np.zeros_like(combined)
        order = np.lexsort((-tie_break, -combined))
        active = active_labels(combined, self.config, decision_thresholds(self.thresholds, scored.aggregate))
        labels, scores = [self.id2label[int(i)] for i in order], [float(combined[i]) for i in order]
        ranked = Prediction(scored.path, labels, scores, len(scored.windows), active, scored.aggregate, scored.windows)
        return with_every_active_label(ranked, top_k)

    def prediction_from_windows(self, name: str, windows: list[WindowResult], top_k: int = 5,
                                aggregate: str = "mean") -> Prediction:
        return self.prediction(self.file_scores(name, windows, aggregate), top_k)

    def score_waveform(self, waveform: np.ndarray, window_seconds: Optional[float] = None,
                       hop_seconds: Optional[float] = None, name: str = "<waveform>",
                       aggregate: str = "mean", sampling_rate: Optional[int] = None) -> FileScores:
        """A waveform already in memory, cut into the same windows as a file: `[n]` or `[n, channels]`
        samples (numpy, list or torch; float, or integer PCM) at `sampling_rate` (None: the model's,
        `self.sampling_rate`), downmixed, scaled and resampled as a file would be (`waveform_at_rate`)."""
        waveform = waveform_at_rate(waveform, sampling_rate, self.sampling_rate, name)
        pieces = clip_windows(waveform, self.config, *self.window_sizes(window_seconds, hop_seconds))
        return self.file_scores(name, self.score_windows(pieces), aggregate)

    def classify_waveform(self, waveform: np.ndarray, top_k: int = 5, window_seconds: Optional[float] = None,
                          hop_seconds: Optional[float] = None, name: str = "<waveform>",
                          aggregate: str = "mean", sampling_rate: Optional[int] = None) -> Prediction:
        scored = self.score_waveform(waveform, window_seconds, hop_seconds, name, aggregate, sampling_rate)
        return self.prediction(scored, top_k)

    def score_file(self, path: str, window_seconds: Optional[float] = None, hop_seconds: Optional[float] = None,
                   aggregate: str = "mean") -> FileScores:
        """A file of any length, read in chunks; raises `AudioFileError` for a bad file. For many files,
        `hfspeech.inference.batch.score_files` also batches windows across them."""
        from hfspeech.inference.batch import score_files

        ((_, result),) = score_files(self, [file_path(path)], window_seconds, hop_seconds, aggregate)
        if isinstance(result, Exception):
            raise result
        return result

    def classify_file(self, path: str, top_k: int = 5, window_seconds: Optional[float] = None,
                      hop_seconds: Optional[float] = None, aggregate: str = "mean") -> Prediction:
        return self.prediction(self.score_file(path, window_seconds, hop_seconds, aggregate), top_k)
