"""The frozen-feature cache is not reused once what the features are made by has changed."""

from conftest import save_random_baseline
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

import hfspeech.models
from hfspeech.training import feature_cache


def test_a_new_features_format_or_library_version_gives_a_new_fingerprint(tmp_path, monkeypatch):
    hfspeech.models.register()
    folder = save_random_baseline(tmp_path / "cnn", "cnn", ["a", "b"], 0.5, n_mels=16, conv_channels=[4, 8])
    model, extractor = AutoModelForAudioClassification.from_pretrained(folder), AutoFeatureExtractor.from_pretrained(folder)
    before = feature_cache.encoder_fingerprint(model, extractor, 8000)
    assert feature_cache.encoder_fingerprint(model, extractor, 8000) == before  # the same inputs: reused
    monkeypatch.setattr(feature_cache, "FEATURES_FORMAT", feature_cache.FEATURES_FORMAT + 1)
    assert feature_cache.encoder_fingerprint(model, extractor, 8000) != before
    monkeypatch.undo()
    monkeypatch.setattr(feature_cache.transformers, "__version__", "99.0.0")
    assert feature_cache.encoder_fingerprint(model, extractor, 8000) != before
