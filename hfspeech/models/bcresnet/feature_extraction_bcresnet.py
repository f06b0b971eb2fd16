"""Feature extractor of BC-ResNet: waveforms only, the front end is in the model."""

from hfspeech.features.feature_extraction import WaveformFeatureExtractor


class BCResNetAudioFeatureExtractor(WaveformFeatureExtractor):
    """Pads and normalises waveforms for ``BCResNetAudioForAudioClassification``.

    A class of its own so ``AutoFeatureExtractor`` can map the ``hfspeech-bcresnet`` config to it.
    """
