from hfspeech.models.bcresnet.configuration_bcresnet import BCResNetAudioConfig
from hfspeech.models.bcresnet.feature_extraction_bcresnet import BCResNetAudioFeatureExtractor
from hfspeech.models.bcresnet.modeling_bcresnet import (
    BCResNetAudioForAudioClassification,
    BCResNetAudioModel,
    BCResNetAudioPreTrainedModel,
)

__all__ = [
    "BCResNetAudioConfig",
    "BCResNetAudioFeatureExtractor",
    "BCResNetAudioForAudioClassification",
    "BCResNetAudioModel",
    "BCResNetAudioPreTrainedModel",
]

# Importing a baseline registers it with the transformers Auto classes (see hfspeech.models.register).
from hfspeech.models import register as _register  # noqa: E402

_register()
