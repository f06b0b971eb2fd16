"""Whisper: real pretrained weights offline (`pretrained`, `convert_ctranslate2`) and its encoder as a
classifier cut to the clip length (`modeling_whisper`): transformers' own `WhisperForAudioClassification`,
or hfspeech's `WhisperClipPoolingForAudioClassification` (the mean over the clip's frames only,
`modeling_clip_pooling`) and `WhisperForLabelScoring` (the decoder scores each label's words,
`modeling_label_scoring`)."""

from hfspeech.models.whisper.modeling_whisper import (add_spec_augment, cut_to_window, is_whisper,
                                                      prepare_whisper_classifier, sized_feature_extractor,
                                                      window_seconds_for)

__all__ = ["add_spec_augment", "cut_to_window", "is_whisper", "prepare_whisper_classifier",
           "sized_feature_extractor", "window_seconds_for"]
