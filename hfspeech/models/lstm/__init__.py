from hfspeech.models.lstm.configuration_lstm import LSTMAudioConfig
from hfspeech.models.lstm.feature_extraction_lstm import LSTMAudioFeatureExtractor
from hfspeech.models.lstm.modeling_lstm import (
    LSTMAudioForAudioClassification,
    LSTMAudioModel,
    LSTMAudioPreTrainedModel,
)

__all__ = [
    "LSTMAudioConfig",
    "LSTMAudioFeatureExtractor",
    "LSTMAudioForAudioClassification",
    "LSTMAudioModel",
    "LSTMAudioPreTrainedModel",
]
