"""Whisper: real pretrained weights offline (`pretrained`, `convert_ctranslate2`) and its encoder as a
classifier cut to the clip length (`modeling_whisper`). The model classes are transformers' own."""

from hfspeech.models.whisper.modeling_whisper import (add_spec_augment, cut_to_window, is_whisper,
                                                      prepare_whisper_classifier, sized_feature_extractor,
                                                      window_seconds_for)

__all__ = ["add_spec_augment", "cut_to_window", "is_whisper", "prepare_whisper_classifier",
           "sized_feature_extractor", "window_seconds_for"]
