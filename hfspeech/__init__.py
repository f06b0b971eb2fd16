"""hfspeech: train, evaluate, export and publish speech and audio classifiers on the Hugging Face stack.

Importing the package registers the baseline models (``hfspeech-cnn``, ``hfspeech-lstm``) with
``AutoConfig``, ``AutoModelForAudioClassification`` and ``AutoFeatureExtractor``, so that
``from_pretrained`` and ``pipeline("audio-classification")`` resolve them.
"""

from hfspeech import models  # noqa: F401  (registers the Auto classes)

__version__ = "0.1.0"
