"""Frozen-feature cache: the head run from cached features gives the whole model's logits, for every family
that can be frozen, and the recipe trains a linear probe from it (`--freeze_base_model`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

from hfspeech.models.frozen import encode_for_head, head_logits
from hfspeech.models.inputs import extract_features
from hfspeech.synthetic.tiny import save_tiny_ssl_model
from hfspeech.training.feature_cache import CachedHeadModel, FeatureCollator
from hfspeech.training.run import main, parse_args, setup_training
from tests.conftest import TINY_CNN, save_random_baseline, synth_clip

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
LABELS = ["a", "b", "c"]
SSL_FAMILIES = {
    "whisper": dict(model_type="whisper", max_source_positions=50, init_std=0.5),
    "whisper-weighted": dict(model_type="whisper", max_source_positions=50, init_std=0.5, use_weighted_layer_sum=True),
    "wav2vec2-weighted": dict(model_type="wav2vec2", initializer_range=0.5, use_weighted_layer_sum=True),
    "hubert": dict(model_type="hubert", initializer_range=0.5),
    "ast": dict(model_type="audio-spectrogram-transformer", initializer_range=0.5),
}
BASELINES = {"cnn-attentive": ("cnn", dict(conv_channels=[4, 8], pooling="attentive")),
             "lstm-stats": ("lstm", dict(lstm_hidden_size=8, n_mfcc=8, pooling="stats"))}


def build(family: str, folder):
    if family in SSL_FAMILIES:
        save_tiny_ssl_model(str(folder), labels=LABELS, **SSL_FAMILIES[family])
    else:
        kind, sizes = BASELINES[family]
        save_random_baseline(folder, kind, LABELS, 0.5, n_mels=16, **sizes)
    return AutoModelForAudioClassification.from_pretrained(folder).eval(), AutoFeatureExtractor.from_pretrained(folder)


@pytest.mark.parametrize("family", list(SSL_FAMILIES) + list(BASELINES))
def test_head_from_cached_features_gives_the_models_logits(family, tmp_path):
    model, extractor = build(family, tmp_path / family)
    rng = np.random.default_rng(0)
    batch = [synth_clip(kind, rng, 16000, seconds) for kind, seconds in (("low", 1.0), ("noise", 0.45), ("high", 0.7))]
    inputs = extract_features(extractor, batch)
    with torch.no_grad():
        live = model(**inputs).logits.numpy()
        # Each clip encoded on its own (as the cache may be built in other batches), the head run on a padded batch.
        features = [encode_for_head(model, extract_features(extractor, [clip]))[0] for clip in batch]
        collated = FeatureCollator(len(LABELS))([{"features": f, "label": 0} for f in features])
        cached = head_logits(model, collated["features"], collated["frame_mask"]).numpy()
    assert np.ptp(live) > 0.05
    np.testing.assert_allclose(cached, live, atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    # init_std 0.5: random features far enough apart for a linear probe to learn in a few epochs
    return save_tiny_ssl_model(tmp_path_factory.mktemp("whisper") / "tiny", "whisper", labels=["a", "b"], init_std=0.5)


FAST = ["--num_train_epochs", "4", "--max_length_seconds", "0.5", "--per_device_train_batch_size", "8",
        "--learning_rate", "1e-2", "--save_total_limit", "1", "--seed", "0"]


def probe_args(checkpoint, data, out, *extra):
    return ["--model_name_or_path", str(checkpoint), "--data_dir", str(data), "--output_dir", str(out),
            "--freeze_base_model", *FAST, *extra]


def test_linear_probe_trains_from_the_cache_and_saves_the_whole_model(tiny_whisper, tone_folder, tmp_path):
    out = tmp_path / "probe"
    main(probe_args(tiny_whisper, tone_folder, out))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_accuracy"] >= 0.8 and metrics["test_accuracy"] > 0.4, metrics  # three tones; chance 1/3
    from safetensors import safe_open

    checkpoints = list(out.glob("checkpoint-*/model.safetensors"))
    assert checkpoints
    for checkpoint in checkpoints:  # the frozen base is not written again and again
        with safe_open(str(checkpoint), "pt") as weights:
            assert "model.classifier.weight" in weights.keys()
            assert not [k for k in weights.keys() if k.startswith("model.encoder.")]
    saved = AutoModelForAudioClassification.from_pretrained(out).eval()
    original = AutoModelForAudioClassification.from_pretrained(tiny_whisper)
    assert saved.config.max_source_positions == 50  # a 0.5-s crop runs in a 1-s window
    original_encoder = original.encoder.state_dict()
    assert all(torch.equal(p, original_encoder[n][: len(p)]) for n, p in saved.encoder.state_dict().items())
    assert not torch.equal(saved.classifier.weight, original.classifier.weight[: saved.config.num_labels])

    # The saved whole model, run live on clips, gives what its head gives from their cached features.
    extractor = AutoFeatureExtractor.from_pretrained(out)
    rng = np.random.default_rng(5)
    clips = [synth_clip(kind, rng, 16000, 0.5) for kind in ("low", "high", "noise")]
    inputs = extract_features(extractor, clips)
    with torch.no_grad():
        live = saved(**inputs).logits
        batch = FeatureCollator()([{"features": f, "label": 0} for f in encode_for_head(saved, inputs)])
        cached = CachedHeadModel(saved)(batch["features"], batch["frame_mask"]).logits
    torch.testing.assert_close(cached, live, atol=1e-5, rtol=0)


def test_the_cache_is_reused_by_the_next_run_with_the_same_encoder(tiny_whisper, tone_folder, tmp_path):
    first = setup_training(*parse_args(probe_args(tiny_whisper, tone_folder, tmp_path / "one")))
    second = setup_training(*parse_args(probe_args(tiny_whisper, tone_folder, tmp_path / "two")))
    files = [f["filename"] for f in first.views["train"].split.cache_files]
    assert files and files == [f["filename"] for f in second.views["train"].split.cache_files]


def test_augmentation_with_the_cache_is_refused_with_the_way_out(tiny_whisper, tone_folder, tmp_path):
    with pytest.raises(ValueError, match="--cache_frozen_features False"):
        setup_training(*parse_args(probe_args(tiny_whisper, tone_folder, tmp_path, "--noise_snr_db", "10,20")))
    live = setup_training(*parse_args(probe_args(tiny_whisper, tone_folder, tmp_path, "--noise_snr_db", "10,20",
                                                 "--cache_frozen_features", "False")))
    assert not isinstance(live.trainer.model, CachedHeadModel)
    assert all(not p.requires_grad for p in live.trainer.model.encoder.parameters())


def test_whisper_fine_tuning_uses_layer_decay_and_spec_augment(tiny_whisper, tone_folder, tmp_path):
    setup = setup_training(*parse_args([
        "--model_name_or_path", str(tiny_whisper), "--data_dir", str(tone_folder), "--output_dir", str(tmp_path),
        *FAST, "--layerwise_lr_decay", "0.5", "--head_learning_rate", "0.1",
        "--config_overrides", '{"apply_spec_augment": true, "mask_time_prob": 0.5, "mask_time_length": 5}']))
    model = setup.trainer.model
    rates = {id(p): group["lr"] for group in setup.trainer.create_optimizer().param_groups for p in group["params"]}
    named = dict(model.named_parameters())
    assert rates[id(named["classifier.weight"])] == pytest.approx(0.1)
    assert rates[id(named["encoder.layers.1.fc1.weight"])] == pytest.approx(1e-2)
    assert rates[id(named["encoder.layers.0.fc1.weight"])] == pytest.approx(5e-3)
    assert rates[id(named["encoder.conv1.weight"])] == pytest.approx(2.5e-3)

    features = torch.randn(2, 80, 100)
    seen = []
    handle = model.encoder.conv1.register_forward_hook(lambda module, args, output: seen.append(args[0].clone()))
    model.train()
    model(input_features=features.clone())
    model.eval()
    model(input_features=features.clone())
    handle.remove()
    assert (seen[0] == 0).float().mean() > 0.2 and torch.equal(seen[1], features)  # masked only in training


def test_weighted_layer_sum_runs_predict_to_plain_logits(tiny_whisper, tone_folder, tmp_path):
    """With a weighted layer sum the model also returns every layer's states; predictions stay the logits."""
    setup = setup_training(*parse_args(["--model_name_or_path", str(tiny_whisper), "--data_dir", str(tone_folder),
                                        "--output_dir", str(tmp_path), *FAST, "--use_weighted_layer_sum", "True"]))
    prediction = setup.trainer.predict(setup.views["test"])
    assert isinstance(prediction.predictions, np.ndarray)
    assert prediction.predictions.shape == (len(setup.views["test"]), 3)
