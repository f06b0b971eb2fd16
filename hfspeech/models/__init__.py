"""Baseline audio classifiers, registered with the transformers Auto classes on first use.

``BASELINE_MODELS`` maps a short name to the classes the training code needs to build a new
model from scratch (config -> model, plus the matching feature extractor).

Lazy, as transformers' own Auto mappings are: ``import hfspeech`` and ``import hfspeech.models`` import
neither torch nor transformers, so ``hfspeech --help`` and ONNX inference start in a fraction of a
second. ``register()`` (idempotent) imports the baselines and registers them with ``AutoConfig``,
``AutoModel``, ``AutoModelForAudioClassification`` and ``AutoFeatureExtractor``. It runs when any of
the names below is first read (``from hfspeech.models import CNNAudioConfig``), when a baseline's
package is imported (``hfspeech.models.cnn``), and from every hfspeech loader; code that calls
``from_pretrained`` on an hfspeech folder without touching hfspeech first calls ``register()`` itself.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

_EXPORTS = {
    "AudioBaselineConfig": "hfspeech.models.configuration_baseline",
    **{name: "hfspeech.models.bcresnet" for name in ("BCResNetAudioConfig", "BCResNetAudioFeatureExtractor",
                                                      "BCResNetAudioForAudioClassification", "BCResNetAudioModel")},
    "CNNAudioConfig": "hfspeech.models.cnn",
    "CNNAudioFeatureExtractor": "hfspeech.models.cnn",
    "CNNAudioForAudioClassification": "hfspeech.models.cnn",
    "CNNAudioModel": "hfspeech.models.cnn",
    "LSTMAudioConfig": "hfspeech.models.lstm",
    "LSTMAudioFeatureExtractor": "hfspeech.models.lstm",
    "LSTMAudioForAudioClassification": "hfspeech.models.lstm",
    "LSTMAudioModel": "hfspeech.models.lstm",
}
_registered = False


class BaselineSpec(NamedTuple):
    config_class: type
    model_class: type
    feature_extractor_class: type


def register() -> None:
    """Register the baselines with the transformers Auto classes (once; later calls return at once)."""
    global _registered
    if _registered:
        return
    _registered = True  # set first: importing the baselines' packages calls back here
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification

    from hfspeech.models import bcresnet, cnn, lstm

    # exist_ok: re-importing (e.g. importlib.reload in a notebook) must not fail.
    for config, base_model, classifier, extractor in (
        (cnn.CNNAudioConfig, cnn.CNNAudioModel, cnn.CNNAudioForAudioClassification, cnn.CNNAudioFeatureExtractor),
        (lstm.LSTMAudioConfig, lstm.LSTMAudioModel, lstm.LSTMAudioForAudioClassification,
         lstm.LSTMAudioFeatureExtractor),
        (bcresnet.BCResNetAudioConfig, bcresnet.BCResNetAudioModel, bcresnet.BCResNetAudioForAudioClassification,
         bcresnet.BCResNetAudioFeatureExtractor),
    ):
        AutoConfig.register(config.model_type, config, exist_ok=True)
        AutoModel.register(config, base_model, exist_ok=True)
        AutoModelForAudioClassification.register(config, classifier, exist_ok=True)
        AutoFeatureExtractor.register(config, extractor, exist_ok=True)
    _register_whisper_classifiers()


def _register_whisper_classifiers() -> None:
    """hfspeech's Whisper classifiers (`whisper.modeling_label_scoring`, `whisper.modeling_clip_pooling`): each
    its own model_type, so a saved one loads as that classifier through the Auto classes, never as
    `WhisperForAudioClassification` (with a random head, or pooling the padding too)."""
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification, WhisperFeatureExtractor

    from hfspeech.models.whisper.configuration_clip_pooling import WhisperClipPoolingConfig
    from hfspeech.models.whisper.configuration_label_scoring import WhisperLabelScoringConfig
    from hfspeech.models.whisper.modeling_clip_pooling import WhisperClipPoolingForAudioClassification
    from hfspeech.models.whisper.modeling_label_scoring import WhisperForLabelScoring

    for config, model in ((WhisperLabelScoringConfig, WhisperForLabelScoring),
                          (WhisperClipPoolingConfig, WhisperClipPoolingForAudioClassification)):
        AutoConfig.register(config.model_type, config, exist_ok=True)
        AutoModelForAudioClassification.register(config, model, exist_ok=True)
        AutoFeatureExtractor.register(config, WhisperFeatureExtractor, exist_ok=True)


def is_baseline(model_type) -> bool:
    """Whether a config's `model_type` is one of hfspeech's own models (CNN, LSTM, BC-ResNet), told without
    importing them: their exports carry the front end in the graph and are handled apart (export, onnxruntime)."""
    return str(model_type).startswith("hfspeech-")


def in_fast_layout(model):
    """`model` with its 2-D convolution weights channels-last where its class sets `prefers_channels_last`, else as
    it is. Measured on CPU, one thread, batches of 16 one-second clips: the CNN's oneDNN convolutions and max
    pooling run 1.5x faster channels-last; BC-ResNet's depthwise convolutions and sub-spectral reshapes run 1.07-1.28x
    slower (docs/inference.md). PyTorch (`TorchBackend`) and the TorchScript export both run the model this way: a
    trace keeps the layout it saw."""
    if not getattr(model, "prefers_channels_last", False):
        return model
    import torch

    return model.to(memory_format=torch.channels_last)


def _baseline_models() -> dict[str, BaselineSpec]:
    from hfspeech.models import bcresnet, cnn, lstm

    return {
        "cnn": BaselineSpec(cnn.CNNAudioConfig, cnn.CNNAudioForAudioClassification, cnn.CNNAudioFeatureExtractor),
        "lstm": BaselineSpec(lstm.LSTMAudioConfig, lstm.LSTMAudioForAudioClassification,
                             lstm.LSTMAudioFeatureExtractor),
        "bcresnet": BaselineSpec(bcresnet.BCResNetAudioConfig, bcresnet.BCResNetAudioForAudioClassification,
                                 bcresnet.BCResNetAudioFeatureExtractor),
    }


def __getattr__(name: str):
    """The model classes and ``BASELINE_MODELS``, imported (and registered) when first asked for."""
    if name == "BASELINE_MODELS":
        register()
        value = _baseline_models()
    elif name in _EXPORTS:
        register()
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = ["BASELINE_MODELS", "BaselineSpec", "is_baseline", "register", *_EXPORTS]
