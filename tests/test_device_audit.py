"""CUDA and bf16 readiness, checked where a CPU can check it: half-precision models through `AudioClassifier`,
and the choice of bf16 made from what the GPU reports (torch's answers stand in for a GPU this machine lacks)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

from conftest import save_random_baseline
from hfspeech.inference.classifier import AudioClassifier

LABELS = ["a", "b", "c"]


def tiny_wav2vec2() -> Wav2Vec2ForSequenceClassification:
    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                            conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=2, classifier_proj_size=8, num_labels=len(LABELS),
                            id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)})
    return Wav2Vec2ForSequenceClassification(config).eval()


def waveforms() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 9000)]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_half_precision_transformers_model_classifies_like_its_float32_self(dtype):
    """`from_pretrained(..., dtype=torch.bfloat16)` is how GPU users load a model; its float inputs must
    follow the model's dtype, as in transformers' pipeline (a torch dtype error before)."""
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True)
    reference = AudioClassifier(tiny_wav2vec2(), extractor, device=torch.device("cpu")).logits(waveforms())
    half = AudioClassifier(tiny_wav2vec2().to(dtype), extractor, device=torch.device("cpu")).logits(waveforms())
    assert half.dtype == np.float32
    np.testing.assert_allclose(half, reference, atol=0.05 * np.abs(reference).max() + 1e-3)


def test_a_half_precision_baseline_still_hears_float32_waveforms(tmp_path):
    """The baselines' front end takes float32 waveforms whatever the model's dtype (docs/models.md): the
    classifier must not round the audio to bf16 before it."""
    folder = save_random_baseline(tmp_path / "cnn", "cnn", LABELS, 0.5, conv_channels=[4, 8], n_mels=16)
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    model = AutoModelForAudioClassification.from_pretrained(folder).to(torch.bfloat16).eval()
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    inputs = extractor(waveforms(), sampling_rate=16000, return_tensors="pt", padding=True)
    with torch.no_grad():
        direct = model(**inputs).logits.float().numpy()
    classifier = AudioClassifier(model, extractor, device=torch.device("cpu"), batch_size=2)
    np.testing.assert_array_equal(classifier.logits(waveforms()), direct)


def a_cuda_gpu(monkeypatch, major: int) -> None:
    """torch as it answers on a CUDA GPU of compute capability `major`.x that can hold bf16 tensors (every
    recent driver can, emulating the arithmetic on GPUs older than Ampere)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: SimpleNamespace(major=major))
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda device: True)
    monkeypatch.setattr(torch.version, "hip", None)


@pytest.mark.parametrize("major, picked", [(7, False), (8, True)])
def test_bf16_is_picked_only_on_gpus_that_run_it_natively(monkeypatch, major, picked):
    """A T4 or V100 (7.x) only emulates bf16, slower than float32: `is_bf16_supported()` says yes there
    unless emulation is excluded, and every run on them trained in emulated bf16."""
    from hfspeech.training.command_line import recipe_parser

    a_cuda_gpu(monkeypatch, major)
    assert recipe_parser().get_default("bf16") is picked


def test_a_model_already_on_a_device_is_left_there():
    """A model the user put on an accelerator (`cuda:1`) stays there without `device=`, as transformers'
    pipeline leaves it; it was moved to `cuda:0` (or to the CPU on a machine where CUDA hid it). The meta
    device stands in for the accelerator: moving a meta model anywhere fails."""
    model = tiny_wav2vec2().to("meta")
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000)
    classifier = AudioClassifier(model, extractor)
    assert classifier.backend.device == torch.device("meta")
    assert next(classifier.backend.model.parameters()).device == torch.device("meta")
    cpu = AudioClassifier(tiny_wav2vec2(), extractor, device=torch.device("cpu"))
    assert next(cpu.backend.model.parameters()).device == torch.device("cpu")


def test_transformers_pipeline_device_numbers_are_understood():
    """`device=-1` is the CPU in transformers' pipeline (it stopped `model.to` with a torch error here)."""
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True)
    classifier = AudioClassifier(tiny_wav2vec2(), extractor, device=-1)
    assert classifier.backend.device == torch.device("cpu")
    reference = AudioClassifier(tiny_wav2vec2(), extractor, device="cpu")
    np.testing.assert_array_equal(classifier.logits(waveforms()), reference.logits(waveforms()))


@pytest.mark.parametrize("family, config", [("cnn", dict(conv_channels=[4, 8], n_mels=16)), ("lstm", {}),
                                            ("bcresnet", {})])
def test_a_baseline_trained_under_bf16_autocast_hears_the_features_predict_computes(tmp_path, family, config):
    """`--bf16` (on by itself on recent GPUs) trains under autocast, which ran the front end's DFT and mel
    products in bf16: features off by 0.27 standard deviations on average on FSDD speech, so a baseline
    trained on features `predict` (float32) never computes. The layers after it still run in bf16."""
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    folder = save_random_baseline(tmp_path / family, family, LABELS, 0.02, **config)
    model = AutoModelForAudioClassification.from_pretrained(folder).eval()
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    t = np.arange(16000) / 16000
    loud_then_quiet = np.where(t < 0.5, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0) + 1e-4 * np.sin(2 * np.pi * 3000 * t)
    inputs = extractor([loud_then_quiet.astype(np.float32), *waveforms()], sampling_rate=16000,
                       return_tensors="pt", padding=True)
    with torch.no_grad():
        plain = model(**inputs, output_hidden_states=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model(**inputs, output_hidden_states=True)  # the LSTM: float32 inside (no bf16 LSTM on some CPUs)
    assert torch.equal(mixed.hidden_states[0], plain.hidden_states[0])
    assert mixed.logits.dtype == torch.bfloat16  # the layers after the front end do run in bf16
