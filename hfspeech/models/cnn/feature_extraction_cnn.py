"""Feature extractor of the CNN baseline: waveforms only, the front end is in the model."""

from hfspeech.features.feature_extraction import WaveformFeatureExtractor


class CNNAudioFeatureExtractor(WaveformFeatureExtractor):
    """Pads and normalises waveforms for ``CNNAudioForAudioClassification``.

    A class of its own so ``AutoFeatureExtractor`` can map the ``hfspeech-cnn`` config to it.
    """
