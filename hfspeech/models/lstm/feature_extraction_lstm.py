"""Feature extractor of the LSTM baseline: waveforms only, the front end is in the model."""

from hfspeech.features.feature_extraction import WaveformFeatureExtractor


class LSTMAudioFeatureExtractor(WaveformFeatureExtractor):
    """Pads and normalises waveforms for ``LSTMAudioForAudioClassification``.

    A class of its own so ``AutoFeatureExtractor`` can map the ``hfspeech-lstm`` config to it.
    """
