"""A clip's logits are the same alone and inside a padded batch, for every model family hfspeech runs.

Model level: the model's forward on a zero-padded batch with its attention mask (where the family takes
one) against the clip alone. Classifier level: `AudioClassifier.logits` on clips of mixed lengths against
each clip alone, in PyTorch and in onnxruntime. A Wav2Vec2 with a group-norm feature encoder (wav2vec2-base
style) must not get an attention mask, and zero padding does change its logits (shown below), so
`AudioClassifier` batches such models by equal length only (`AudioClassifier.pads_with_attention_mask`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

from hfspeech.inference.classifier import AudioClassifier
from hfspeech.synthetic.tiny import GROUP_NORM_FEATURE_ENCODER, save_tiny_ssl_model
from tests.conftest import save_random_baseline

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning",
                                        "ignore::torch.jit.TracerWarning")

LABELS = ["a", "b", "c"]
INIT = 0.5  # logits O(1), so that a 1e-4 tolerance means something (the default init gives ~0.01)
# Lengths in samples at 16 kHz: 1 s, odd lengths, and 0.2 s (the tiny SSL encoders need >= 0.1 s).
LENGTHS = [16000, 5001, 9137, 3200]
FAMILIES = {
    "cnn": None,
    "lstm": None,
    "wav2vec2": dict(model_type="wav2vec2"),
    "wav2vec2-group": dict(model_type="wav2vec2", **GROUP_NORM_FEATURE_ENCODER),
    "hubert": dict(model_type="hubert"),
    "wavlm": dict(model_type="wavlm"),
    "ast": dict(model_type="audio-spectrogram-transformer"),
    # A Whisper encoder cut to a 1-s window (as fine-tuning cuts it): every clip is padded to the window.
    "whisper": dict(model_type="whisper", max_source_positions=50, init_std=INIT),
}
MASKED_SSL = ["wav2vec2", "hubert", "wavlm"]


def save_model(folder: Path, family: str) -> Path:
    settings = FAMILIES[family]
    if settings is not None:
        save_tiny_ssl_model(str(folder), labels=LABELS, initializer_range=INIT, **settings)
        return folder
    sizes = {"cnn": dict(conv_channels=[4, 8]), "lstm": dict(lstm_hidden_size=8, n_mfcc=8, num_lstm_layers=2)}[family]
    return save_random_baseline(folder, family, LABELS, INIT, n_mels=16, **sizes)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("padding")
    return {family: save_model(root / family, family) for family in FAMILIES}


def clips(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(max(LENGTHS)) / 16000
    tone = np.sin(2 * np.pi * 440 * t)
    return [(0.3 * tone[:n] + 0.1 * rng.standard_normal(n)).astype(np.float32) for n in LENGTHS]


def forward(model, extractor, batch: list[np.ndarray], with_mask: bool = True) -> np.ndarray:
    inputs = extractor(batch, sampling_rate=16000, padding="longest", return_tensors="pt")
    if not with_mask:
        inputs.pop("attention_mask", None)
    with torch.no_grad():
        return model(**inputs).logits.numpy()


@pytest.mark.parametrize("family", MASKED_SSL + ["ast"])
def test_model_forward_is_padding_invariant(family, models):
    """Layer-norm SSL encoders with their attention mask, and AST (every clip becomes the same fixed-size
    spectrogram, so there is no padding the model could see)."""
    model = AutoModelForAudioClassification.from_pretrained(models[family]).eval()
    extractor = AutoFeatureExtractor.from_pretrained(models[family])
    if family in MASKED_SSL:
        assert extractor.return_attention_mask and model.config.feat_extract_norm == "layer"
    batch = clips()
    batched = forward(model, extractor, batch)
    assert np.ptp(batched) > 0.05  # logits that differ well beyond the tolerance
    for i, clip in enumerate(batch):
        np.testing.assert_allclose(batched[i], forward(model, extractor, [clip])[0], atol=1e-4, rtol=0)


def test_group_norm_encoder_is_not_padding_invariant_without_equal_lengths(models):
    """Why the classifier batches group-norm models by equal length: the padded batch changes the logits
    of every clip shorter than the longest, with or without an attention mask (the extractor returns none)."""
    model = AutoModelForAudioClassification.from_pretrained(models["wav2vec2-group"]).eval()
    extractor = AutoFeatureExtractor.from_pretrained(models["wav2vec2-group"])
    assert model.config.feat_extract_norm == "group" and not extractor.return_attention_mask
    batch = clips()
    batched = forward(model, extractor, batch)
    differences = [np.abs(batched[i] - forward(model, extractor, [clip])[0]).max() for i, clip in enumerate(batch)]
    assert differences[0] < 1e-4  # the longest clip has no padding
    assert min(differences[1:]) > 1e-3


@pytest.mark.parametrize("family", list(FAMILIES))
def test_classifier_logits_are_padding_invariant(family, models):
    classifier = AudioClassifier.from_pretrained(str(models[family]), device=torch.device("cpu"), batch_size=8)
    assert classifier.pads_with_attention_mask == (family not in ("wav2vec2-group", "ast", "whisper"))
    batch = clips(1) + clips(2)[:2]  # eight clips, two of the same length as others
    together = classifier.logits(batch)
    assert np.ptp(together) > 0.05
    for i, clip in enumerate(batch):
        np.testing.assert_allclose(together[i], classifier.logits([clip])[0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", ["cnn", "wav2vec2", "wav2vec2-group", "whisper"])
def test_onnx_classifier_is_padding_invariant_and_matches_pytorch(family, models, tmp_path):
    from hfspeech.export import export_onnx

    path = export_onnx(models[family], tmp_path / "onnx")
    exported = AudioClassifier.from_pretrained(str(path), batch_size=8)
    reference = AudioClassifier.from_pretrained(str(models[family]), device=torch.device("cpu"), batch_size=8)
    assert exported.backend.name == "onnx"
    batch = clips(3)
    together = exported.logits(batch)
    np.testing.assert_allclose(together, reference.logits(batch), atol=1e-4, rtol=0)
    for i, clip in enumerate(batch):
        np.testing.assert_allclose(together[i], exported.logits([clip])[0], atol=1e-4, rtol=0)


def test_group_norm_variant_is_saved_like_wav2vec2_base(models):
    config = json.loads((models["wav2vec2-group"] / "config.json").read_text())
    extractor = json.loads((models["wav2vec2-group"] / "preprocessor_config.json").read_text())
    assert config["feat_extract_norm"] == "group" and config["do_stable_layer_norm"] is False
    assert extractor["return_attention_mask"] is False
