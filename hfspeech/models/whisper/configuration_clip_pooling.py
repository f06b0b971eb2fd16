"""Config of `WhisperClipPoolingForAudioClassification`: a Whisper config under its own model_type.

No new fields: what differs is the pooling, and a model_type of its own is what keeps a saved one from loading
as transformers' `WhisperForAudioClassification`, which would average the padding too and answer differently.
"""

from __future__ import annotations

from transformers import WhisperConfig

MODEL_TYPE = "whisper-clip-pooling"


class WhisperClipPoolingConfig(WhisperConfig):
    model_type = MODEL_TYPE


def clip_pooling_config(whisper_config: WhisperConfig) -> WhisperClipPoolingConfig:
    """A Whisper checkpoint's (or Whisper classifier's) config, values and all, as this model's."""
    values = whisper_config.to_dict()
    for key in ("model_type", "architectures", "transformers_version"):
        values.pop(key, None)
    return WhisperClipPoolingConfig(**values)
