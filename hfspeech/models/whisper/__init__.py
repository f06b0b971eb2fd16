"""Whisper: real pretrained weights offline (`pretrained`, `convert_ctranslate2`) and its encoder as a
classifier cut to the clip length (`modeling_whisper`): transformers' own `WhisperForAudioClassification`,
or hfspeech's `WhisperClipPoolingForAudioClassification` (the mean over the clip's frames only,
`modeling_clip_pooling`) and `WhisperForLabelScoring` (the decoder scores each label's words,
`modeling_label_scoring`).

The names below come from `modeling_whisper` (torch, transformers' Whisper) when first read, as
`hfspeech.models` gives its baselines: `hfspeech pretrained --help` reads only the `pretrained` table, and
importing this package for it waited seconds for a model it never built. Registering the classifiers with the
Auto classes is not done here (`hfspeech.models.register`), so nothing a saved classifier loads with waits on it.
"""

from __future__ import annotations

import importlib

__all__ = ["add_spec_augment", "cut_to_window", "is_whisper", "prepare_whisper_classifier",
           "sized_feature_extractor", "window_seconds_for"]


def __getattr__(name: str):
    """`from hfspeech.models.whisper import prepare_whisper_classifier`: read from `modeling_whisper` (a submodule,
    `from hfspeech.models.whisper import pretrained`, is not one of these: Python's import finds it)."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("hfspeech.models.whisper.modeling_whisper"), name)
    globals()[name] = value
    return value
