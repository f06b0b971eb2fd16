"""Baseline audio classifiers, registered with the transformers Auto classes on import.

``BASELINE_MODELS`` maps a short name to the classes the training code needs to build a new
model from scratch (config -> model, plus the matching feature extractor).
"""

from typing import NamedTuple

from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification

from hfspeech.models.cnn import (
    CNNAudioConfig,
    CNNAudioFeatureExtractor,
    CNNAudioForAudioClassification,
    CNNAudioModel,
)
from hfspeech.models.configuration_baseline import AudioBaselineConfig
from hfspeech.models.lstm import (
    LSTMAudioConfig,
    LSTMAudioFeatureExtractor,
    LSTMAudioForAudioClassification,
    LSTMAudioModel,
)


class BaselineSpec(NamedTuple):
    config_class: type
    model_class: type
    feature_extractor_class: type


BASELINE_MODELS: dict[str, BaselineSpec] = {
    "cnn": BaselineSpec(CNNAudioConfig, CNNAudioForAudioClassification, CNNAudioFeatureExtractor),
    "lstm": BaselineSpec(LSTMAudioConfig, LSTMAudioForAudioClassification, LSTMAudioFeatureExtractor),
}

# exist_ok: re-importing (e.g. importlib.reload in a notebook) must not fail.
for _config, _base_model in ((CNNAudioConfig, CNNAudioModel), (LSTMAudioConfig, LSTMAudioModel)):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _base_model, exist_ok=True)
for _spec in BASELINE_MODELS.values():
    AutoModelForAudioClassification.register(_spec.config_class, _spec.model_class, exist_ok=True)
    AutoFeatureExtractor.register(_spec.config_class, _spec.feature_extractor_class, exist_ok=True)

__all__ = [
    "AudioBaselineConfig",
    "BASELINE_MODELS",
    "BaselineSpec",
    "CNNAudioConfig",
    "CNNAudioFeatureExtractor",
    "CNNAudioForAudioClassification",
    "CNNAudioModel",
    "LSTMAudioConfig",
    "LSTMAudioFeatureExtractor",
    "LSTMAudioForAudioClassification",
    "LSTMAudioModel",
]
