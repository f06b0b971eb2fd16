"""Waveform feature extractor shared by the baselines.

It only validates, pads and normalises waveforms. The spectral front end (log-mel, MFCC,
fbank) lives in the model (``hfspeech.features.frontend``) so that an exported model carries it
and serving cannot drift from training; the extractor stays trivial to reimplement anywhere
(``hfspeech.features.waveform.WaveformPreprocessor`` is that reimplementation, in numpy, for ONNX inference).
"""

from transformers import Wav2Vec2FeatureExtractor

from hfspeech.features.waveform import check_waveforms, float_clips
from hfspeech.features.hub_push import CodelessPushWarning


class WaveformFeatureExtractor(CodelessPushWarning, Wav2Vec2FeatureExtractor):
    """``Wav2Vec2FeatureExtractor`` with baseline defaults and input checks.

    Reuses its padding, per-utterance zero-mean/unit-variance normalisation (over the valid
    samples only), attention mask and sampling-rate check. Padding is 0.0 and the attention mask
    is returned by default: the models' front ends rely on both for exact padding invariance.
    Additionally rejects empty clips and clips with NaN/inf samples, which would otherwise turn
    into NaN features and a NaN loss far from their cause, and takes integer PCM (int16, int32, uint8)
    as a decoded file (``float_samples``: scaled to [-1, 1], float32), where transformers would pass it
    on as float64 and the model would refuse it with a torch dtype error.
    """

    model_input_names = ["input_values", "attention_mask"]

    def __init__(
        self,
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
        **kwargs,
    ):
        super().__init__(
            feature_size=feature_size,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            do_normalize=do_normalize,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )

    check_waveforms = staticmethod(check_waveforms)

    def __call__(self, raw_speech, *args, **kwargs):
        raw_speech = float_clips(raw_speech)  # integer PCM scaled to [-1, 1], float32 (`float_samples`)
        self.check_waveforms(raw_speech)
        return super().__call__(raw_speech, *args, **kwargs)
