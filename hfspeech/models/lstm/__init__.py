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

# Importing a baseline registers both with the transformers Auto classes (see hfspeech.models.register).
from hfspeech.models import register as _register  # noqa: E402

_register()
