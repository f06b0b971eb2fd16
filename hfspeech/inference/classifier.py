"""One-call inference on files: `AudioClassifier.from_pretrained(model).classify_file(path)`.

Files longer than the model's window (the clip length it was trained on, saved in its config as
`max_length_seconds`) are cut into overlapping windows, classified in batches, and the class
probabilities averaged, so a minute-long recording gets one answer from a model trained on 1 s clips.

The model runs in PyTorch, or exported in onnxruntime or TorchScript (`hfspeech.inference.backends`):
`from_pretrained` picks by what the path holds, and everything above the logits is shared.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from hfspeech.data.audio import decode_audio
from hfspeech.inference.backends import (
    WEIGHT_FILES,
    Backend,
    OnnxBackend,
    TorchBackend,
    TorchScriptBackend,
    locate_model,
)

DEFAULT_WINDOW_SECONDS = 10.0


class NotAModelError(ValueError):
    """A path that does not hold a saved model (no config.json, or no weights)."""


@dataclass
class Prediction:
    """The top-k labels of one file, best first, with the number of windows that were averaged."""

    path: str
    labels: list[str]
    scores: list[float]
    num_windows: int

    def to_dict(self) -> dict:
        return {"path": self.path, "num_windows": self.num_windows,
                "predictions": [{"label": l, "score": s} for l, s in zip(self.labels, self.scores)]}


class AudioClassifier:
    """A model (or an exported one) and its feature extractor, ready to classify waveforms and files."""

    def __init__(self, model, feature_extractor, device: Optional[torch.device] = None, batch_size: int = 16):
        """`model`: a transformers model, run in PyTorch on `device`, or a backend from
        `hfspeech.inference.backends` (`OnnxBackend`, `TorchScriptBackend`)."""
        self.backend: Backend = model if isinstance(model, (TorchBackend, OnnxBackend, TorchScriptBackend)) \
            else TorchBackend(model, device)
        self.config = self.backend.config
        self.feature_extractor = feature_extractor
        self.batch_size = batch_size
        self.sampling_rate = int(feature_extractor.sampling_rate)
        self.id2label = {int(i): label for i, label in self.config.id2label.items()}

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: Optional[torch.device] = None,
                        trust_remote_code: bool = False, backend: Optional[str] = None, **kwargs) -> "AudioClassifier":
        """A training run's folder (or Hub id) runs in PyTorch; a `.onnx` / `.pt` file, or an export folder
        (`hfspeech export`) without PyTorch weights, runs in onnxruntime / TorchScript. `backend`
        (`"pytorch"`, `"onnx"`, `"torchscript"`) forces the choice for a folder."""
        kind, folder, model_file = locate_model(name_or_path, backend)
        if kind == "pytorch":
            if os.path.exists(folder):
                check_model_folder(folder, trust_remote_code)
            model = AutoModelForAudioClassification.from_pretrained(folder, trust_remote_code=trust_remote_code)
        else:
            check_export_folder(folder, model_file)
            config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
            try:
                model = OnnxBackend(model_file, config) if kind == "onnx" else TorchScriptBackend(model_file, config)
            except Exception as error:  # onnxruntime and torch.jit raise their own types for a damaged file
                loader = "onnxruntime" if kind == "onnx" else "torch.jit.load"
                raise NotAModelError(f"{model_file}: corrupt, {loader} cannot load it ({error})") from error
        feature_extractor = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=trust_remote_code)
        return cls(model, feature_extractor, device=device, **kwargs)

    def predict_proba(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities [N, num_labels] for mono waveforms at the model's sampling rate."""
        outputs = []
        for start in range(0, len(waveforms), self.batch_size):
            batch = self.feature_extractor(
                list(waveforms[start : start + self.batch_size]), sampling_rate=self.sampling_rate,
                padding="longest", return_tensors="np",
            )
            logits = torch.from_numpy(self.backend.logits(dict(batch)))
            outputs.append(torch.softmax(logits, dim=-1).numpy())
        return np.concatenate(outputs) if outputs else np.zeros((0, len(self.id2label)), dtype=np.float32)

    def classify_waveform(self, waveform: np.ndarray, top_k: int = 5, window_seconds: Optional[float] = None,
                          hop_seconds: Optional[float] = None, name: str = "<waveform>") -> Prediction:
        windows = split_windows(waveform, self.sampling_rate, window_seconds or self.window_seconds, hop_seconds)
        probabilities = self.predict_proba(windows).mean(axis=0)
        order = np.argsort(-probabilities)[: max(1, min(top_k, len(probabilities)))]
        return Prediction(name, [self.id2label[int(i)] for i in order], [float(probabilities[i]) for i in order],
                          len(windows))

    def classify_file(self, path: str, top_k: int = 5, window_seconds: Optional[float] = None,
                      hop_seconds: Optional[float] = None) -> Prediction:
        waveform = decode_audio(path, self.sampling_rate)
        return self.classify_waveform(waveform, top_k, window_seconds, hop_seconds, name=str(path))

    @property
    def window_seconds(self) -> float:
        return float(getattr(self.config, "max_length_seconds", None) or DEFAULT_WINDOW_SECONDS)


def split_windows(waveform: np.ndarray, sampling_rate: int, window_seconds: float,
                  hop_seconds: Optional[float] = None) -> list[np.ndarray]:
    """Overlapping windows (hop = half a window by default); the last one ends at the end of the clip."""
    window = max(1, int(round(window_seconds * sampling_rate)))
    if len(waveform) <= window:
        return [waveform]
    hop = max(1, int(round((hop_seconds or window_seconds / 2) * sampling_rate)))
    starts = list(range(0, len(waveform) - window + 1, hop))
    if starts[-1] + window < len(waveform):
        starts.append(len(waveform) - window)
    return [waveform[s : s + window] for s in starts]


def check_model_folder(path: str, trust_remote_code: bool = False) -> None:
    """A clear error for a path that is not a saved model, before transformers fails deep inside."""
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
    config_file = os.path.join(path, "config.json")
    try:
        with open(config_file, encoding="utf-8") as f:
            config = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NotAModelError(f"{config_file}: corrupt config, not valid JSON ({error})") from None
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
