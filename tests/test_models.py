"""Tests for the CNN and LSTM baselines, pooling, losses and Auto-class registration."""

import numpy as np
import pytest
import torch
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForAudioClassification,
    PretrainedConfig,
    pipeline,
)

from hfspeech.models import BASELINE_MODELS
from hfspeech.models.configuration_baseline import POOLING_TYPES
from hfspeech.models.losses import classification_loss
from hfspeech.models.lstm.modeling_lstm import LSTMLayer, reverse_within_lengths
from hfspeech.models.pooling import build_pooling

SR = 16000
LABELS = {0: "tone", 1: "noise"}
BASELINES = ["cnn", "lstm"]


def tiny_config(name: str, **kwargs):
    settings = dict(n_mels=16, id2label=LABELS, label2id={label: i for i, label in LABELS.items()})
    if name == "cnn":
        settings.update(conv_channels=[4, 8])
    else:
        settings.update(lstm_hidden_size=8, num_lstm_layers=1, n_mfcc=8)
    settings.update(kwargs)
    return BASELINE_MODELS[name].config_class(**settings)


def tiny_model(name: str, **kwargs):
    torch.manual_seed(0)
    return BASELINE_MODELS[name].model_class(tiny_config(name, **kwargs))


def extractor_for(name: str):
    return BASELINE_MODELS[name].feature_extractor_class()


def make_clip(kind: str, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """A tone at a random frequency and phase, or white noise."""
    if kind == "tone":
        t = np.arange(num_samples) / SR
        return np.sin(2 * np.pi * rng.uniform(300, 3000) * t + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    return rng.standard_normal(num_samples).astype(np.float32)


def encode(name: str, clips):
    return extractor_for(name)(clips, sampling_rate=SR, padding=True, return_tensors="pt")


@pytest.mark.parametrize(
    "name,kwargs",
    [("cnn", dict(pooling=p)) for p in POOLING_TYPES]
    + [("cnn", dict(frequency_pooling="mean", conv_channels=[4, 8, 8]))]
    + [("lstm", dict(num_lstm_layers=2)), ("lstm", dict(bidirectional=False, pooling="mean"))],
)
def test_logits_are_padding_invariant(name, kwargs):
    """A clip alone and inside a zero-padded batch gives the same logits (eval mode)."""
    model = tiny_model(name, **kwargs).eval()
    rng = np.random.default_rng(0)
    clips = [make_clip("noise", n, rng) for n in (16000, 5000, 1, 161)] + [make_clip("tone", 7777, rng)]
    with torch.no_grad():
        batched = model(**encode(name, clips)).logits
        for i, clip in enumerate(clips):
            alone = model(**encode(name, [clip])).logits
            torch.testing.assert_close(batched[i], alone[0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", BASELINES)
def test_base_model_zeroes_padded_frames_and_reports_the_mask(name):
    model = BASELINE_MODELS[name].model_class(tiny_config(name)).eval()
    base = model.cnn if name == "cnn" else model.lstm
    rng = np.random.default_rng(1)
    out = base(**encode(name, [make_clip("noise", 16000, rng), make_clip("noise", 3000, rng)]))
    lengths = out.frame_mask.sum(-1)
    assert lengths[0] == out.last_hidden_state.shape[1] and lengths[1] < lengths[0]
    assert torch.all(out.last_hidden_state[1, int(lengths[1]) :] == 0)


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("num_samples", [1, 10 * SR])
def test_very_short_and_long_clips_work(name, num_samples):
    model = tiny_model(name).eval()
    with torch.no_grad():
        logits = model(**encode(name, [make_clip("noise", num_samples, np.random.default_rng(2))])).logits
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", BASELINES)
def test_save_and_load_through_auto_classes(name, tmp_path):
    spec = BASELINE_MODELS[name]
    model = tiny_model(name).eval()
    extractor_for(name).save_pretrained(tmp_path)
    model.save_pretrained(tmp_path)
    rng = np.random.default_rng(3)
    inputs = encode(name, [make_clip("tone", 4000, rng), make_clip("noise", 2500, rng)])

    config = AutoConfig.from_pretrained(tmp_path)
    assert type(config) is spec.config_class
    assert config.id2label == LABELS and config.label2id == {"tone": 0, "noise": 1}
    assert type(AutoFeatureExtractor.from_pretrained(tmp_path)) is spec.feature_extractor_class

    reloaded = AutoModelForAudioClassification.from_pretrained(tmp_path).eval()
    assert type(reloaded) is spec.model_class
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, model(**inputs).logits, atol=0, rtol=0)

    base = AutoModel.from_pretrained(tmp_path).eval()
    original_base = model.cnn if name == "cnn" else model.lstm
    assert type(base) is type(original_base)
    with torch.no_grad():
        torch.testing.assert_close(base(**inputs).last_hidden_state, original_base(**inputs).last_hidden_state)


@pytest.mark.parametrize("name", BASELINES)
def test_pipeline_returns_labels_from_id2label(name, tmp_path):
    model = tiny_model(name).eval()
    model.save_pretrained(tmp_path)
    extractor_for(name).save_pretrained(tmp_path)
    clip = make_clip("tone", 8000, np.random.default_rng(5))
    classifier = pipeline("audio-classification", model=str(tmp_path))
    results = classifier(clip)
    assert {r["label"] for r in results} == set(LABELS.values())
    with torch.no_grad():
        probabilities = model(**encode(name, [clip])).logits.softmax(-1)[0]
    for result in results:
        assert result["score"] == pytest.approx(float(probabilities[model.config.label2id[result["label"]]]), abs=1e-5)


@pytest.mark.parametrize("name", BASELINES)
def test_short_training_run_lowers_the_loss(name):
    rng = np.random.default_rng(6)
    kinds = ["tone", "noise"] * 8
    clips = [make_clip(kind, int(rng.integers(2000, 4000)), rng) for kind in kinds]
    inputs = encode(name, clips)
    labels = torch.tensor([0 if kind == "tone" else 1 for kind in kinds])
    model = tiny_model(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def eval_loss():
        model.eval()
        with torch.no_grad():
            return float(model(**inputs, labels=labels).loss)

    initial = eval_loss()
    model.train()
    for _ in range(30):
        optimizer.zero_grad()
        model(**inputs, labels=labels).loss.backward()
        optimizer.step()
    assert eval_loss() < 0.5 * initial


def low_and_high_tones(rng: np.random.Generator, pairs: int = 8):
    t = np.arange(8000) / SR
    clips = []
    for _ in range(pairs):
        for freq in (300.0, 2500.0):
            tone = 0.5 * np.sin(2 * np.pi * freq * (1 + 0.02 * rng.standard_normal()) * t)
            clips.append((tone + 0.01 * rng.standard_normal(t.size)).astype(np.float32))
    return encode("cnn", clips), torch.tensor([0, 1] * pairs)


def test_cnn_learns_where_in_frequency_a_tone_is():
    """Low vs high tones differ only in frequency position, which flattening frequency keeps.

    Averaging over frequency instead (``frequency_pooling="mean"``) leaves the tiny CNN only edge
    effects to go on: its held-out loss after the same 30 steps stays around 0.2-0.3.
    """
    rng = np.random.default_rng(9)
    (train_inputs, train_labels), (test_inputs, test_labels) = low_and_high_tones(rng), low_and_high_tones(rng)
    model = tiny_model("cnn", apply_spec_augment=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        optimizer.zero_grad()
        model(**train_inputs, labels=train_labels).loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        assert float(model(**test_inputs, labels=test_labels).loss) < 0.1


def test_lstm_gradients_reach_every_parameter():
    model = tiny_model("lstm", num_lstm_layers=2, input_projection_size=6, pooling="attentive", classifier_dropout=0.0)
    rng = np.random.default_rng(7)
    inputs = encode("lstm", [make_clip("tone", 4000, rng), make_clip("noise", 1500, rng)])
    model(**inputs, labels=torch.tensor([0, 1])).loss.backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name


def test_lstm_layer_matches_packed_bidirectional_lstm():
    """Same weights, same valid outputs as torch's BiLSTM over packed (unpadded) sequences."""
    torch.manual_seed(0)
    layer = LSTMLayer(input_size=3, hidden_size=4, bidirectional=True)
    reference = torch.nn.LSTM(3, 4, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for name, param in layer.forward_lstm.named_parameters():
            getattr(reference, name).copy_(param)
            getattr(reference, name + "_reverse").copy_(getattr(layer.backward_lstm, name))
    x, lengths = torch.randn(3, 6, 3), torch.tensor([6, 2, 4])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected, _ = torch.nn.utils.rnn.pad_packed_sequence(reference(packed)[0], batch_first=True)
    output = layer(x, lengths)
    for i, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(output[i, :length], expected[i, :length])


def test_reverse_within_lengths_flips_only_valid_steps_and_is_an_involution():
    x = torch.arange(2 * 5 * 3, dtype=torch.float32).view(2, 5, 3)
    lengths = torch.tensor([5, 3])
    reversed_x = reverse_within_lengths(x, lengths)
    torch.testing.assert_close(reversed_x[0], x[0].flip(0))
    torch.testing.assert_close(reversed_x[1, :3], x[1, :3].flip(0))
    torch.testing.assert_close(reversed_x[1, 3:], x[1, 3:])
    torch.testing.assert_close(reverse_within_lengths(reversed_x, lengths), x)


@pytest.mark.parametrize("kind", POOLING_TYPES)
def test_pooling_ignores_padded_frames(kind):
    torch.manual_seed(0)
    pooling, output_size = build_pooling(kind, hidden_size=5)
    x = torch.randn(2, 7, 5)
    mask = torch.arange(7).unsqueeze(0) < torch.tensor([[7], [3]])
    garbage = x.masked_fill(~mask.unsqueeze(-1), 1e3)
    pooled = pooling(garbage, mask)
    assert pooled.shape == (2, output_size)
    torch.testing.assert_close(pooled[1], pooling(x[1:2, :3], torch.ones(1, 3, dtype=torch.bool))[0])


def test_build_pooling_rejects_unknown_kind():
    with pytest.raises(ValueError, match="Unknown pooling"):
        build_pooling("median", hidden_size=4)


@pytest.mark.parametrize(
    "num_labels,labels,expected_type,reference",
    [
        (1, torch.tensor([0.5, -1.0]), "regression", lambda lg, lb: torch.nn.functional.mse_loss(lg.squeeze(), lb)),
        (3, torch.tensor([2, 0]), "single_label_classification", torch.nn.functional.cross_entropy),
        (
            3,
            torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]),
            "multi_label_classification",
            torch.nn.functional.binary_cross_entropy_with_logits,
        ),
    ],
)
def test_loss_follows_transformers_problem_type_rules(num_labels, labels, expected_type, reference):
    config = PretrainedConfig(num_labels=num_labels)
    logits = torch.randn(2, num_labels)
    loss = classification_loss(logits, labels, config)
    assert config.problem_type == expected_type
    torch.testing.assert_close(loss, reference(logits, labels))


def test_explicit_multi_label_problem_type_accepts_integer_targets():
    config = PretrainedConfig(num_labels=3, problem_type="multi_label_classification")
    logits, labels = torch.randn(2, 3), torch.tensor([[1, 0, 1], [0, 1, 0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
    torch.testing.assert_close(classification_loss(logits, labels, config), expected)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", BASELINES)
def test_onnx_export_matches_pytorch(name, tmp_path):
    """Legacy (TorchScript-based) ONNX export, as optimum uses it, with dynamic batch and length."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")

    class LogitsOnly(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_values, attention_mask):
            return self.model(input_values, attention_mask, return_dict=False)[0]

    model = tiny_model(name).eval()
    rng = np.random.default_rng(8)
    example = encode(name, [make_clip("tone", 4000, rng), make_clip("noise", 3000, rng)])
    axes = {0: "batch", 1: "samples"}
    torch.onnx.export(
        LogitsOnly(model).eval(),
        (example["input_values"], example["attention_mask"]),
        str(tmp_path / "model.onnx"),
        input_names=["input_values", "attention_mask"],
        output_names=["logits"],
        dynamic_axes={"input_values": axes, "attention_mask": axes},
        dynamo=False,
    )
    session = ort.InferenceSession(str(tmp_path / "model.onnx"))
    inputs = encode(name, [make_clip("noise", 9000, rng), make_clip("tone", 6001, rng), make_clip("noise", 1, rng)])
    onnx_logits = session.run(None, {key: value.numpy() for key, value in inputs.items()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(onnx_logits, model(**inputs).logits.numpy(), atol=1e-4)
