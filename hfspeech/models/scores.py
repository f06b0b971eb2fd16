"""From logits to scores to labels: the one place that says how a model's outputs are read.

A single-label model's scores are a softmax over its labels; a multi-label one's
(`config.problem_type == "multi_label_classification"`) an independent sigmoid per label, and a label is
active when its score reaches its threshold. Thresholds are tuned per class on validation after training
(`evaluation.thresholds.tune_thresholds`) and kept in the config as `label_thresholds` ({label: threshold},
saved in config.json), so every consumer -- training's test report, `hfspeech predict` / `evaluate` /
`stream` / `serve`, the pipeline, an exported model (its folder keeps config.json) -- turns scores into
labels the same way. A label missing from `label_thresholds` (or a model without it) uses
`DEFAULT_THRESHOLD`. numpy only: the ONNX inference path reads this without torch or transformers.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from hfspeech.models.problem_types import MULTI_LABEL

DEFAULT_THRESHOLD = 0.5


def is_multi_label(config: Any) -> bool:
    """Whether a model config (a transformers config, an exported model's JSON config, or config.json as a
    dict) is a multi-label classifier."""
    problem_type = config.get("problem_type") if isinstance(config, dict) else getattr(config, "problem_type", None)
    return problem_type == MULTI_LABEL


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """float64 sigmoid (thresholds are compared in the precision they were tuned in)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def scores_from_logits(logits: np.ndarray, config: Any) -> np.ndarray:
    """Logits `[..., num_labels]` -> float32 scores: a sigmoid per label for a multi-label model, else a softmax."""
    if is_multi_label(config):
        return sigmoid(logits).astype(np.float32)
    logits = np.asarray(logits, dtype=np.float32)
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def id_ordered_labels(config: Any) -> list[str]:
    """The label names in class-id order."""
    id2label = {int(i): label for i, label in config.id2label.items()}
    return [id2label[i] for i in range(len(id2label))]


def unnamed_labels(labels: Sequence[str]) -> bool:
    """Whether labels in class-id order are transformers' placeholders, `LABEL_0`, `LABEL_1`, ...: a config saved
    without `id2label` (a head never trained, or trained by a script that did not name its classes)."""
    return bool(labels) and list(labels) == [f"LABEL_{index}" for index in range(len(labels))]


def thresholds_from_config(config: Any, label_names: Optional[Sequence[str]] = None,
                           default: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """`config.label_thresholds` as an array in id order (or in the order of `label_names`); `default` for a
    label it does not name. Training, evaluation and every inference path read thresholds through here."""
    label_names = id_ordered_labels(config) if label_names is None else label_names
    saved = getattr(config, "label_thresholds", None) or {}
    return np.array([float(saved.get(name, default)) for name in label_names])


def thresholds_to_dict(label_names: Sequence[str], thresholds: Sequence[float]) -> dict[str, float]:
    """{label: threshold}, rounded to 6 decimals, the form saved as `config.label_thresholds`."""
    return {str(name): round(float(value), 6) for name, value in zip(label_names, thresholds)}


def label_thresholds(config: Any, default: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Per-label float32 thresholds `[num_labels]` in id order (see `thresholds_from_config`)."""
    return thresholds_from_config(config, default=default).astype(np.float32)


def labels_above(scores: np.ndarray, config: Any, thresholds: Optional[np.ndarray] = None) -> list[str]:
    """The labels whose score is at or above their threshold, in id order. Pass `thresholds`
    (`label_thresholds(config)`) when calling per window, so they are read from the config once."""
    thresholds = label_thresholds(config) if thresholds is None else thresholds
    id2label = {int(i): label for i, label in config.id2label.items()}
    return [id2label[i] for i in np.flatnonzero(np.asarray(scores) >= thresholds)]


def active_labels(scores: np.ndarray, config: Any, thresholds: Optional[np.ndarray] = None) -> list[str]:
    """A multi-label model's labels at or above their thresholds for one row of scores; [] for single-label."""
    return labels_above(scores, config, thresholds) if is_multi_label(config) else []
