"""Mends of the families audit (session 33): SEW-D's base found (head rate, freezing, layer-wise decay, the frozen
feature cache), Wav2Vec2-BERT's cache, padding of Data2VecAudio and the Conformer, Data2VecAudio's and SEW's layer-wise
rates, SEW-D's TorchScript refusal, and two flags that were accepted and ignored (AST's weighted layer sum, Whisper's
mask probabilities without `apply_spec_augment`). Tiny random checkpoints, built as /tmp/families33's make_models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict
from torch import nn
from transformers import (AutoConfig, AutoModelForAudioClassification, SeamlessM4TFeatureExtractor,
                          Wav2Vec2FeatureExtractor)

from hfspeech.errors import UsageError
from hfspeech.inference.classifier import AudioClassifier
from hfspeech.models.frozen import encode_for_head, head_logits
from hfspeech.models.inputs import extract_features
from hfspeech.training.feature_cache import FeatureCollator, can_cache, cached_feature_views
from hfspeech.training.optim import freeze, parameter_groups

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning",
                                        "ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
LABELS = ["a", "b", "c"]
SSL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(32, 32, 32),
           conv_stride=(5, 8, 8), conv_kernel=(10, 8, 8), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
           classifier_proj_size=16, feat_extract_norm="layer", do_stable_layer_norm=True, mask_time_prob=0.0,
           layerdrop=0.0, initializer_range=0.5)
SEW = dict(SSL, squeeze_factor=2, feat_extract_norm="group", do_stable_layer_norm=None)
CONFIGS = {
    "data2vec-audio": SSL,
    "wav2vec2-conformer": dict(SSL, position_embeddings_type="relative"),
    "sew": SEW,
    "sew-d": dict(SEW, max_position_embeddings=64, position_buckets=16, share_att_key=True, relative_attention=True),
    "wav2vec2-bert": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          feature_projection_input_dim=160, classifier_proj_size=16, mask_time_prob=0.0, layerdrop=0.0,
                          conv_depthwise_kernel_size=7, output_hidden_size=32, position_embeddings_type="relative_key",
                          left_max_position_embeddings=16, right_max_position_embeddings=8, initializer_range=0.5),
}


def tiny(model_type: str, folder=None, **overrides):
    """A tiny random classifier of `model_type` (and its extractor), saved to `folder` when given."""
    torch.manual_seed(0)
    values = {k: v for k, v in {**CONFIGS[model_type], **overrides}.items() if v is not None}
    config = AutoConfig.for_model(model_type, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                                  label2id={label: i for i, label in enumerate(LABELS)}, **values)
    model = AutoModelForAudioClassification.from_config(config).eval()
    if model_type == "wav2vec2-bert":
        extractor = SeamlessM4TFeatureExtractor(feature_size=80, num_mel_bins=80, sampling_rate=16000, stride=2)
    else:
        extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                             return_attention_mask=config.feat_extract_norm == "layer")
    if folder is not None:
        model.save_pretrained(folder)
        extractor.save_pretrained(folder)
    return model, extractor


def clips(lengths=(16000, 5001, 9137, 3200), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    tone = np.sin(2 * np.pi * 440 * np.arange(max(lengths)) / 16000)
    return [(0.3 * tone[:n] + 0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


def rates(model, **kwargs) -> dict[str, float]:
    groups = parameter_groups(model, 1e-3, 0.0, set(), **kwargs)
    by_id = {id(p): group["lr"] for group in groups for p in group["params"]}
    return {name: by_id[id(p)] for name, p in model.named_parameters() if id(p) in by_id}


def test_sew_d_head_learning_rate_reaches_only_the_head():
    """SEW-D's `base_model_prefix` is 'sew-d', its attribute `sew_d`: every parameter was "head", the whole
    encoder trained at the head's rate."""
    model, _ = tiny("sew-d")
    by_name = rates(model, head_learning_rate=1e-2)
    assert {r for n, r in by_name.items() if n.startswith("sew_d.")} == {1e-3}
    assert by_name["classifier.weight"] == by_name["projector.weight"] == 1e-2


def test_sew_d_freezes_its_base_and_decays_over_its_layers():
    model, _ = tiny("sew-d")
    by_name = rates(model, layerwise_lr_decay=0.5)
    assert by_name["sew_d.encoder.encoder.layer.1.attention.self.query_proj.weight"] == 1e-3  # the top layer
    assert by_name["sew_d.encoder.encoder.layer.0.attention.self.query_proj.weight"] == 5e-4
    assert by_name["sew_d.encoder.upsample.projection.weight"] == 1e-3  # runs after the last layer
    assert by_name["sew_d.encoder.pos_conv_embed.conv.bias"] == 2.5e-4  # below the first layer
    freeze(model, base_model=True)
    assert not any(p.requires_grad for p in model.sew_d.parameters())
    assert model.classifier.weight.requires_grad


class NoBase(nn.Module):
    """A model whose `base_model_prefix` names no module of it."""

    base_model_prefix = "backbone"

    def __init__(self):
        super().__init__()
        self.trunk, self.classifier = nn.Linear(4, 4), nn.Linear(4, 2)


def test_a_model_without_a_base_is_refused_for_the_head_rate_not_trained_all_at_it():
    with pytest.raises(UsageError, match="--head_learning_rate: NoBase has no base model"):
        parameter_groups(NoBase(), 1e-3, 0.0, set(), head_learning_rate=1e-2)


def test_data2vec_positional_convs_are_not_counted_as_encoder_layers():
    """`encoder.pos_conv_embed.layers.N` (16 in the tiny model, 5 in data2vec-audio-base) were counted as layers:
    the top encoder layer learned at lr * decay**14."""
    model, _ = tiny("data2vec-audio")
    by_name = rates(model, layerwise_lr_decay=0.5)
    assert by_name["data2vec_audio.encoder.layers.1.attention.q_proj.weight"] == 1e-3
    assert by_name["data2vec_audio.encoder.layers.0.attention.q_proj.weight"] == 5e-4
    assert by_name["data2vec_audio.encoder.pos_conv_embed.layers.15.conv.weight"] == 2.5e-4


def test_sew_upsampling_learns_with_the_top_layer():
    model, _ = tiny("sew")
    by_name = rates(model, layerwise_lr_decay=0.5)
    assert by_name["sew.encoder.upsample.projection.weight"] == by_name["sew.encoder.layers.1.attention.q_proj.weight"]


@pytest.mark.parametrize("model_type", ["sew-d", "wav2vec2-bert"])
def test_head_from_cached_features_gives_the_models_logits(model_type):
    model, extractor = tiny(model_type)
    assert can_cache(model)
    batch = clips((16000, 7000, 11000))
    with torch.no_grad():  # each clip alone: SEW-D's group norm reads padding (it gets no mask)
        live = np.concatenate([model(**extract_features(extractor, [clip])).logits.numpy() for clip in batch])
        features = [encode_for_head(model, extract_features(extractor, [clip]))[0] for clip in batch]
        collated = FeatureCollator(len(LABELS))([{"features": f, "label": 0} for f in features])
        cached = head_logits(model, collated["features"], collated["frame_mask"]).numpy()
    assert np.ptp(live) > 0.05
    np.testing.assert_allclose(cached, live, atol=1e-4, rtol=0)


@pytest.mark.parametrize("model_type, overrides", [("data2vec-audio", {}), ("wav2vec2-conformer", {}),
                                                   ("sew", {"feat_extract_norm": "layer"}),  # a mask returned
                                                   ("sew-d", {"feat_extract_norm": "layer"})])
def test_classifier_logits_do_not_depend_on_batch_mates(model_type, overrides, tmp_path):
    """Their extractor returns a mask, but the encoder reads padded frames: a clip scored beside a longer one
    got other scores than alone (top label flipped in the audit). They are batched by equal length now."""
    tiny(model_type, tmp_path, **overrides)
    classifier = AudioClassifier.from_pretrained(str(tmp_path), device=torch.device("cpu"), batch_size=8)
    batch = clips() + clips(seed=1)[:2]
    together = classifier.logits(batch)
    assert np.ptp(together) > 0.05
    for i, clip in enumerate(batch):
        np.testing.assert_allclose(together[i], classifier.logits([clip])[0], atol=1e-4, rtol=0)


def test_feature_cache_encodes_a_clip_as_it_is_alone():
    """The frozen-feature cache encodes a `map` batch at a time: a Data2VecAudio clip's cached features were
    those of a padded batch, not what `predict` computes for it."""
    model, extractor = tiny("data2vec-audio", use_weighted_layer_sum=True)
    batch = clips()
    split = Dataset.from_dict({"input_values": [clip.tolist() for clip in batch], "label": [0, 1, 2, 0]})
    views = cached_feature_views(model, extractor, DatasetDict(train=split), 16000, None, batch_size=4)
    cached = [views["train"][i]["features"] for i in range(len(batch))]
    for clip, features in zip(batch, cached):
        alone = encode_for_head(model, extract_features(extractor, [clip]))[0]
        np.testing.assert_allclose(features, alone, atol=1e-5, rtol=0)


def test_sew_d_torchscript_export_is_one_line_pointing_to_onnx(tmp_path):
    from hfspeech.export.loading import ExportError
    from hfspeech.export.torchscript_export import export_torchscript

    tiny("sew-d", tmp_path / "model")
    with pytest.raises(ExportError, match="model_type 'sew-d' cannot be traced to TorchScript .*--format onnx"):
        export_torchscript(tmp_path / "model", tmp_path / "ts")
    assert not (tmp_path / "ts").exists()


def test_weighted_layer_sum_is_refused_for_ast_before_any_data_is_read(tmp_path):
    """AST has no weighted sum of its layers: the flag was accepted, and the run trained without it."""
    from hfspeech.synthetic.tiny import save_tiny_ssl_model
    from hfspeech.training.arguments import ModelArguments
    from hfspeech.training.model_setup import check_model_flags

    folder = save_tiny_ssl_model(str(tmp_path / "ast"), "audio-spectrogram-transformer", labels=LABELS)
    check_model_flags(ModelArguments(model_name_or_path=str(folder), use_weighted_layer_sum=False))
    with pytest.raises(UsageError, match="--use_weighted_layer_sum: model_type 'audio-spectrogram-transformer'"):
        check_model_flags(ModelArguments(model_name_or_path=str(folder), use_weighted_layer_sum=True))


@pytest.mark.parametrize("overrides, applied", [('{"mask_time_prob": 0.3, "mask_time_length": 2}', True),
                                                ('{"mask_time_prob": 0.3, "apply_spec_augment": false}', False),
                                                ('{"mask_time_prob": 0.0}', False)])
def test_whisper_mask_probability_turns_spec_augment_on(overrides, applied, tmp_path, caplog):
    """Whisper's `apply_spec_augment` defaults to off: `mask_time_prob` alone trained without masking, silently."""
    from hfspeech.synthetic.tiny import save_tiny_ssl_model
    from hfspeech.training.arguments import ModelArguments
    from hfspeech.training.model_setup import build_model

    folder = save_tiny_ssl_model(str(tmp_path / "whisper"), "whisper", labels=LABELS, max_source_positions=50)
    model, _ = build_model(ModelArguments(model_name_or_path=str(folder), config_overrides=overrides), LABELS,
                           max_length_seconds=1)
    assert model.config.apply_spec_augment is applied
    assert ("apply_spec_augment" in caplog.text) is applied


def test_head_learning_rate_reaches_the_head_of_a_model_run_from_cached_features():
    """The cache's `CachedHeadModel` wraps the whole model: its base is `model.sew_d`, not an attribute of its own."""
    from hfspeech.training.feature_cache import CachedHeadModel

    model, _ = tiny("sew-d")
    freeze(model, base_model=True)
    by_name = rates(CachedHeadModel(model), head_learning_rate=1e-2)
    assert set(by_name) == {"model.projector.weight", "model.projector.bias", "model.classifier.weight",
                            "model.classifier.bias"}
    assert set(by_name.values()) == {1e-2}


def test_a_label_scorers_decoder_layers_decay_on_top_of_its_encoders():
    """Whisper's label scorer runs its decoder on the encoder's output: its layers were counted as the encoder's
    (decoder layer i beside encoder layer i), then, by the base-layers rule, as below the first (review R2)."""
    from tests.test_whisper_label_scoring import tiny_scorer

    model = tiny_scorer("eager")
    groups = parameter_groups(model, 1e-3, 0.0, set(), layerwise_lr_decay=0.5)
    rate = {id(p): group["lr"] for group in groups for p in group["params"]}
    by_layer = {".".join(name.split(".")[:4]): rate[id(p)] for name, p in model.named_parameters()
                if ".layers." in name}
    encoder = sorted(v for k, v in by_layer.items() if ".encoder." in k)
    decoder = [by_layer[k] for k in sorted(k for k in by_layer if ".decoder." in k)]
    assert decoder == sorted(decoder) and decoder[-1] == 1e-3 and max(encoder) < decoder[0], by_layer
    norm = [rate[id(p)] for name, p in model.named_parameters() if name.startswith("model.decoder.layer_norm.")]
    assert norm and set(norm) == {1e-3}, norm  # the norm after the decoder's last layer learns with it (review R3)
