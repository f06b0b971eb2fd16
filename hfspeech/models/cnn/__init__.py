from hfspeech.models.cnn.configuration_cnn import CNNAudioConfig
from hfspeech.models.cnn.feature_extraction_cnn import CNNAudioFeatureExtractor
from hfspeech.models.cnn.modeling_cnn import (
    CNNAudioForAudioClassification,
    CNNAudioModel,
    CNNAudioPreTrainedModel,
)

__all__ = [
    "CNNAudioConfig",
    "CNNAudioFeatureExtractor",
    "CNNAudioForAudioClassification",
    "CNNAudioModel",
    "CNNAudioPreTrainedModel",
]

# Importing a baseline registers both with the transformers Auto classes (see hfspeech.models.register).
from hfspeech.models import register as _register  # noqa: E402

_register()
