"""One-call inference on files: `AudioClassifier.from_pretrained(model).classify_file(path)`.

Files longer than the model's window (the clip length it was trained on, saved in its config as
`max_length_seconds`) are cut into overlapping windows, classified in batches, and the class
probabilities averaged (or their maximum taken, or the windows' votes counted), so a minute-long recording
gets one answer from a model trained on 1 s clips. `classify_file` reads the file in chunks
(`hfspeech.data.audio.iter_audio_chunks`) and classifies windows in batches as they complete
(`hfspeech.inference.windows.WindowSlicer`), so a file of any length runs in bounded memory; its windows
are those `split_windows` cuts from the whole waveform.

Scores: softmax over the labels for a single-label model; for a multi-label one
(`config.problem_type == "multi_label_classification"`) an independent sigmoid per label, and the labels
at or above their threshold (`config.label_thresholds`, default 0.5) are the prediction's `active_labels`.
`scores_from_logits` and `active_labels` are that one step, for files, windows, timelines and streams.

The model runs in PyTorch, or exported in onnxruntime or TorchScript (`hfspeech.inference.backends`):
`from_pretrained` picks by what the path holds, and everything above the logits is shared. Everything here
above the backends is numpy: an ONNX export is loaded (config.json as JSON, `WaveformPreprocessor` for the
waveform extractors) without importing torch or transformers, which is most of a cold start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import numpy as np

from hfspeech.data.audio import DEFAULT_CHUNK_SECONDS, iter_audio_chunks
from hfspeech.evaluation.thresholds import DEFAULT_THRESHOLD, thresholds_from_config
from hfspeech.features.waveform import WaveformPreprocessor
from hfspeech.models.loading import NotAModelError, is_local_path, pretrained_errors
from hfspeech.inference.backends import (
    WEIGHT_FILES,
    Backend,
    OnnxBackend,
    TorchBackend,
    TorchScriptBackend,
    locate_model,
)
from hfspeech.inference.config_json import JsonConfig, read_config_json
from hfspeech.inference.windows import WindowResult, WindowSlicer
from hfspeech.models.inputs import extract_features, has_fixed_window
from hfspeech.models.problem_types import MULTI_LABEL

DEFAULT_WINDOW_SECONDS = 10.0
AGGREGATIONS = ("mean", "max", "vote")


def is_multi_label(config) -> bool:
    return getattr(config, "problem_type", None) == MULTI_LABEL


def scores_from_logits(logits: np.ndarray, config) -> np.ndarray:
    """Logits `[..., num_labels]` -> scores: a sigmoid per label for a multi-label model, else a softmax."""
    logits = np.asarray(logits, dtype=np.float32)
    if is_multi_label(config):
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def label_thresholds(config, default: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Per-label thresholds `[num_labels]` in id order: `config.label_thresholds` ({label: float}) where it
    names a label, `default` for the others."""
    return thresholds_from_config(config, default=default).astype(np.float32)


def labels_above(scores: np.ndarray, config, default: float = DEFAULT_THRESHOLD) -> list[str]:
    """The labels whose score is at or above their threshold (`label_thresholds`), in id order."""
    id2label = {int(i): label for i, label in config.id2label.items()}
    return [id2label[i] for i in np.flatnonzero(np.asarray(scores) >= label_thresholds(config, default))]


def active_labels(scores: np.ndarray, config) -> list[str]:
    """A multi-label model's labels at or above their thresholds for one row of scores; [] for single-label."""
    return labels_above(scores, config) if is_multi_label(config) else []


def aggregate_scores(scores: np.ndarray, mode: str, config) -> np.ndarray:
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
        return (scores >= label_thresholds(config)).mean(axis=0).astype(np.float32)
    return (np.bincount(scores.argmax(axis=1), minlength=scores.shape[1]) / len(scores)).astype(np.float32)


@dataclass
class Prediction:
    """The top-k labels of one file, best first, aggregated over `num_windows` windows; for a multi-label
    model also the labels active for the file. `windows` holds each window's scores (the timeline)."""

    path: str
    labels: list[str]
    scores: list[float]
    num_windows: int
    active_labels: list[str] = field(default_factory=list)
    aggregate: str = "mean"
    windows: list[WindowResult] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        return {"path": self.path, "num_windows": self.num_windows, "aggregate": self.aggregate,
                "predictions": [{"label": l, "score": s} for l, s in zip(self.labels, self.scores)],
                "active_labels": self.active_labels}


class AudioClassifier:
    """A model (or an exported one) and its feature extractor, ready to classify waveforms and files."""

    def __init__(self, model, feature_extractor, device=None, batch_size: int = 16):
        """`model`: a transformers model, run in PyTorch on `device` (a `torch.device`), or a backend from
        `hfspeech.inference.backends` (`OnnxBackend`, `TorchScriptBackend`), or any object with the same
        `config` and `logits(inputs)`."""
        self.backend: Backend = model if callable(getattr(model, "logits", None)) else TorchBackend(model, device)
        self.config = self.backend.config
        self.feature_extractor = feature_extractor
        self.batch_size = batch_size
        self.sampling_rate = int(feature_extractor.sampling_rate)
        self.id2label = {int(i): label for i, label in self.config.id2label.items()}

    @classmethod
    def from_pretrained(cls, name_or_path: str, device=None,
                        trust_remote_code: bool = False, backend: Optional[str] = None, **kwargs) -> "AudioClassifier":
        """A training run's folder (or Hub id) runs in PyTorch; a `.onnx` / `.pt` file, or an export folder
        (`hfspeech export`) without PyTorch weights, runs in onnxruntime / TorchScript. `backend`
        (`"pytorch"`, `"onnx"`, `"torchscript"`) forces the choice for a folder."""
        kind, folder, model_file = locate_model(name_or_path, backend)
        if kind == "pytorch":
            from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

            from hfspeech.models import register

            register()
            if is_local_path(folder):
                check_model_folder(folder, trust_remote_code)
            with pretrained_errors(folder):
                model = AutoModelForAudioClassification.from_pretrained(folder, trust_remote_code=trust_remote_code)
                feature_extractor = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=trust_remote_code)
            return cls(model, feature_extractor, device=device, **kwargs)
        check_export_folder(folder, model_file)
        try:
            config = JsonConfig.from_pretrained(folder)
        except ValueError as error:
            raise NotAModelError(str(error)) from None
        try:
            model = OnnxBackend(model_file, config) if kind == "onnx" else TorchScriptBackend(model_file, config)
        except Exception as error:  # onnxruntime and torch.jit raise their own types for a damaged file
            loader = "onnxruntime" if kind == "onnx" else "torch.jit.load"
            raise NotAModelError(f"{model_file}: corrupt, {loader} cannot load it ({error})") from error
        return cls(model, export_feature_extractor(folder, trust_remote_code), device=device, **kwargs)

    @property
    def pads_with_attention_mask(self) -> bool:
        """Whether clips of different lengths can share a padded batch.

        A feature extractor that returns an attention mask (the baselines; Wav2Vec2/HuBERT/WavLM with a
        layer-norm feature encoder, e.g. wav2vec2-large, XLS-R) pads, and the model ignores the padding.
        One that does not is a model that must NOT be given a mask: a group-norm feature encoder
        (`feat_extract_norm == "group"`, wav2vec2-base, hubert-base) normalises each channel over the whole
        time axis, padding included, and the extractor normalises the waveform over the padded length too,
        so zero padding changes the logits (transformers' docs for Wav2Vec2: such models "should not be
        passed an attention_mask" and "yield slightly different results depending on whether input_values
        is padded or not"; huggingface/transformers#10117, #21534). Those models are batched by equal length
        only, each clip exactly as it would run alone. Windows of one file all have the same length, so
        batching is kept where it matters. (AST's extractor pads every clip to its fixed input length and
        returns no mask: equal-length batching is harmless there. Whisper's pads every clip to its fixed
        window, so any clips can share a batch.)
        """
        return bool(getattr(self.feature_extractor, "return_attention_mask", False))

    def _batches(self, waveforms: Sequence[np.ndarray]) -> Iterator[list[int]]:
        """Indices of the clips that run together: consecutive ones, or only equal lengths (see above)."""
        if self.pads_with_attention_mask or has_fixed_window(self.feature_extractor):
            for start in range(0, len(waveforms), self.batch_size):
                yield list(range(start, min(start + self.batch_size, len(waveforms))))
            return
        by_length: dict[int, list[int]] = {}
        for index, waveform in enumerate(waveforms):
            by_length.setdefault(len(waveform), []).append(index)
        for indices in by_length.values():
            for start in range(0, len(indices), self.batch_size):
                yield indices[start : start + self.batch_size]

    def logits(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Logits [N, num_labels] for mono waveforms at the model's sampling rate, in batches."""
        output = np.zeros((len(waveforms), len(self.id2label)), dtype=np.float32)
        for indices in self._batches(waveforms):
            batch = extract_features(self.feature_extractor, [waveforms[i] for i in indices], return_tensors="np")
            output[indices] = self.backend.logits(dict(batch))
        return output

    def predict_proba(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Class scores [N, num_labels] (`scores_from_logits`: softmax, or sigmoid for multi-label)."""
        return scores_from_logits(self.logits(waveforms), self.config)

    def window_sizes(self, window_seconds: Optional[float] = None,
                     hop_seconds: Optional[float] = None) -> tuple[int, int]:
        """(window, hop) in samples, rounded as `split_windows` rounds them."""
        window_seconds = window_seconds or self.window_seconds
        window = max(1, int(round(window_seconds * self.sampling_rate)))
        hop = max(1, int(round((hop_seconds or window_seconds / 2) * self.sampling_rate)))
        return window, hop

    def score_windows(self, windows: Sequence[tuple[int, np.ndarray]], first_index: int = 0) -> list[WindowResult]:
        """`(start sample, waveform)` pairs -> `WindowResult`s with scores and active labels."""
        scores = self.predict_proba([waveform for _, waveform in windows]) if windows else []
        return [self.window_result(first_index + i, start, len(waveform), row)
                for i, ((start, waveform), row) in enumerate(zip(windows, scores))]

    def window_result(self, index: int, start: int, length: int, scores: np.ndarray) -> WindowResult:
        """One scored window of `length` samples from sample `start`, with its active labels."""
        return WindowResult(index, start / self.sampling_rate, (start + length) / self.sampling_rate, scores,
                            active_labels(scores, self.config))

    def iter_windows(self, path: str, window_seconds: Optional[float] = None, hop_seconds: Optional[float] = None,
                     chunk_seconds: int = DEFAULT_CHUNK_SECONDS) -> Iterator[WindowResult]:
        """Scored windows of a file of any length, in order, read and classified chunk by chunk: memory is
        bounded by a chunk, a window and a batch, not by the file. Same windows as `split_windows`. The next
        chunks are decoded in a background thread while the model runs (`batch.prefetched`)."""
        from hfspeech.inference.batch import prefetched

        slicer = WindowSlicer(*self.window_sizes(window_seconds, hop_seconds))
        pending: list[tuple[int, np.ndarray]] = []
        done = 0
        for chunk in prefetched(iter_audio_chunks(path, self.sampling_rate, chunk_seconds)):
            pending.extend(slicer.push(chunk))
            while len(pending) >= self.batch_size:
                batch, pending = pending[: self.batch_size], pending[self.batch_size :]
                yield from self.score_windows(batch, done)
                done += len(batch)
        pending.extend(slicer.finish())
        yield from self.score_windows(pending, done)

    def prediction_from_windows(self, name: str, windows: list[WindowResult], top_k: int = 5,
                                aggregate: str = "mean") -> Prediction:
        scored = np.stack([w.scores for w in windows if w.scores is not None]) if windows else \
            np.zeros((0, len(self.id2label)), dtype=np.float32)
        combined = aggregate_scores(scored, aggregate, self.config)
        # Ties (votes) are broken by the mean score.
        tie_break = scored.mean(axis=0) if len(scored) else np.zeros_like(combined)
        order = np.lexsort((-tie_break, -combined))[: max(1, min(top_k, len(combined)))]
        if not is_multi_label(self.config):
            active = []
        elif aggregate == "vote":
            active = [self.id2label[int(i)] for i in np.flatnonzero(combined >= 0.5)]
        else:
            active = active_labels(combined, self.config)
        return Prediction(name, [self.id2label[int(i)] for i in order], [float(combined[i]) for i in order],
                          len(windows), active, aggregate, windows)

    def classify_waveform(self, waveform: np.ndarray, top_k: int = 5, window_seconds: Optional[float] = None,
                          hop_seconds: Optional[float] = None, name: str = "<waveform>",
                          aggregate: str = "mean") -> Prediction:
        """A waveform already in memory, cut with `split_windows` (the reference for the chunked path)."""
        window, hop = self.window_sizes(window_seconds, hop_seconds)
        windows = split_windows(waveform, self.sampling_rate, window / self.sampling_rate, hop / self.sampling_rate)
        starts = window_starts(len(waveform), window, hop)
        return self.prediction_from_windows(name, self.score_windows(list(zip(starts, windows))), top_k, aggregate)

    def classify_file(self, path: str, top_k: int = 5, window_seconds: Optional[float] = None,
                      hop_seconds: Optional[float] = None, aggregate: str = "mean") -> Prediction:
        """A file of any length, read in chunks (see `iter_windows`); raises `AudioFileError` for a bad file.
        For many files, `hfspeech.inference.batch.predict_files` also batches windows across them."""
        from hfspeech.inference.batch import predict_files

        ((_, result),) = predict_files(self, [str(path)], top_k, window_seconds, hop_seconds, aggregate)
        if isinstance(result, Exception):
            raise result
        return result

    @property
    def window_seconds(self) -> float:
        return float(getattr(self.config, "max_length_seconds", None) or DEFAULT_WINDOW_SECONDS)


def split_windows(waveform: np.ndarray, sampling_rate: int, window_seconds: float,
                  hop_seconds: Optional[float] = None) -> list[np.ndarray]:
    """Overlapping windows (hop = half a window by default); the last one ends at the end of the clip."""
    window = max(1, int(round(window_seconds * sampling_rate)))
    hop = max(1, int(round((hop_seconds or window_seconds / 2) * sampling_rate)))
    return [waveform[s : s + window] for s in window_starts(len(waveform), window, hop)]


def window_starts(num_samples: int, window: int, hop: int) -> list[int]:
    """Where `split_windows` starts its windows (in samples)."""
    if num_samples <= window:
        return [0]
    starts = list(range(0, num_samples - window + 1, hop))
    if starts[-1] + window < num_samples:
        starts.append(num_samples - window)
    return starts


def export_feature_extractor(folder: str, trust_remote_code: bool = False):
    """An export folder's feature extractor: numpy's `WaveformPreprocessor` for the waveform extractors (the
    baselines', Wav2Vec2's), transformers' own for the others (AST's and Whisper's spectrograms)."""
    preprocessor = WaveformPreprocessor.from_pretrained(folder)
    if preprocessor is not None:
        return preprocessor
    from transformers import AutoFeatureExtractor

    return AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=trust_remote_code)


def check_model_folder(path: str, trust_remote_code: bool = False) -> None:
    """A clear error for a path that is not a saved model, before transformers fails deep inside."""
    if not os.path.exists(path):
        raise NotAModelError(f"{path}: model folder not found")
    if not os.path.isdir(path):
        raise NotAModelError(f"{path}: not a model folder (it is a file; pass the folder holding config.json)")
    names = set(os.listdir(path))
    if "config.json" not in names:
        raise NotAModelError(f"{path}: not a model folder (no config.json)")
    if not names & set(WEIGHT_FILES):
        raise NotAModelError(f"{path}: no model weights (model.safetensors) in the folder")
    if "preprocessor_config.json" not in names:
        raise NotAModelError(f"{path}: no feature extractor (preprocessor_config.json) in the folder")
    check_model_config(path, trust_remote_code)


def check_model_config(path: str, trust_remote_code: bool = False) -> dict:
    """The folder's config.json, checked: valid JSON, a model_type transformers knows (or remote code the
    user allowed), and label maps that agree with each other and with the classifier in the weights."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from hfspeech.models import register

    register()
    config_file = os.path.join(path, "config.json")
    try:
        config = read_config_json(path)
    except ValueError as error:
        raise NotAModelError(str(error)) from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise NotAModelError(f"{config_file}: no model_type in the config, so the model's class is unknown")
    model_type = config["model_type"]
    if model_type not in CONFIG_MAPPING:
        if "AutoConfig" not in config.get("auto_map", {}):
            raise NotAModelError(f"{config_file}: unknown model_type {model_type!r} (not a transformers or "
                                 "hfspeech model, and no code in the folder)")
        if not trust_remote_code:
            raise NotAModelError(f"{config_file}: model_type {model_type!r} needs the code in the folder; "
                                 "run it only if you trust it, with trust_remote_code=True")
    id2label, label2id = config.get("id2label", {}), config.get("label2id", {})
    if label2id and {str(i): l for l, i in label2id.items()} != {str(i): l for i, l in id2label.items()}:
        raise NotAModelError(f"{config_file}: id2label and label2id disagree")
    classes = _classifier_size(os.path.join(path, "model.safetensors"))
    if id2label and classes is not None and classes != len(id2label):
        raise NotAModelError(f"{config_file}: {len(id2label)} labels in id2label but the classifier in "
                             f"model.safetensors has {classes} outputs")
    return config


def _classifier_size(weights_file: str) -> Optional[int]:
    """Rows of the last layer's weight (`classifier.weight`), read from the safetensors header alone;
    None when there is no such tensor or the file cannot be read (the loader then names the problem)."""
    from safetensors import safe_open

    try:
        with safe_open(weights_file, framework="pt") as f:
            return f.get_slice("classifier.weight").get_shape()[0] if "classifier.weight" in f.keys() else None
    except Exception:  # a missing or damaged file: reported by from_pretrained with its own error
        return None


def check_export_folder(folder: str, model_file) -> None:
    """The same for an exported model: the file itself, and the config.json (labels, window) and
    preprocessor_config.json (sampling rate) that `hfspeech export` writes beside it."""
    if not os.path.isfile(model_file):
        raise NotAModelError(f"{model_file}: no such exported model file")
    for name, holds in (("config.json", "labels"), ("preprocessor_config.json", "sampling rate")):
        if not os.path.isfile(os.path.join(folder, name)):
            raise NotAModelError(f"{folder}: no {name} ({holds}) beside {os.path.basename(model_file)}; "
                                 "`hfspeech export` writes it")
