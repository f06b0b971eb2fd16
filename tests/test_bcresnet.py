"""BC-ResNet: sizes of the paper's family, save/load, padding invariance, ONNX (fp32, int8), TorchScript, remote
code and the streaming path, each against the PyTorch model's own logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

from conftest import save_random_baseline, synth_clip
from test_export import layout_of_4d_weights, noise_batch, pytorch_logits
from hfspeech.export import export_onnx, export_torchscript
from hfspeech.inference.backends import OnnxBackend
from hfspeech.inference.classifier import AudioClassifier
from hfspeech.inference.streaming import StreamingClassifier
from hfspeech.models import BASELINE_MODELS, BCResNetAudioConfig, BCResNetAudioForAudioClassification

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::UserWarning",
                                        "ignore::DeprecationWarning")

LABELS = ["low", "high", "noise"]
INIT = 0.5
TINY = dict(width_multiplier=0.5, blocks_per_stage=[1, 1, 2, 1], n_mels=20, apply_spec_augment=False)
BATCH_LENGTHS = [[7000], [16000, 5000, 1600], [3000, 12000, 8000, 1700, 16000]]


def parameters(width: float, num_labels: int = 12) -> int:
    return sum(p.numel() for p in BCResNetAudioForAudioClassification(
        BCResNetAudioConfig(width_multiplier=width, num_labels=num_labels)).parameters())


def test_family_sizes_match_the_paper():
    """BC-ResNet-1 about 9.2k and -8 about 321k parameters on 40 mels and 12 classes (Kim et al. 2021)."""
    assert 8_000 <= parameters(1) <= 10_500
    assert 290_000 <= parameters(8) <= 340_000
    assert parameters(1) < parameters(3) < parameters(8)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bcresnet") / "model"
    return save_random_baseline(folder, "bcresnet", LABELS, INIT, max_length_seconds=0.5, **TINY)


def test_saved_model_reloads_through_the_auto_classes_with_the_same_logits(model_dir):
    assert AutoConfig.from_pretrained(model_dir).model_type == "hfspeech-bcresnet"
    model = AutoModelForAudioClassification.from_pretrained(model_dir).eval()
    assert isinstance(model, BCResNetAudioForAudioClassification)
    batch = noise_batch(model_dir, [16000, 9000], 0)
    first, second = pytorch_logits(model_dir, batch), pytorch_logits(model_dir, batch)
    assert np.ptp(first) > 0.1
    np.testing.assert_array_equal(first, second)
    assert "bcresnet" in BASELINE_MODELS


def test_a_clip_gets_the_same_logits_alone_and_in_a_padded_batch(model_dir):
    model = AutoModelForAudioClassification.from_pretrained(model_dir).eval()
    extractor = AutoFeatureExtractor.from_pretrained(model_dir)
    rng = np.random.default_rng(1)
    clips = [(0.3 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 5001, 9137, 3200)]
    with torch.no_grad():
        together = model(**extractor(clips, sampling_rate=16000, padding="longest", return_tensors="pt")).logits
        for i, clip in enumerate(clips):
            alone = model(**extractor([clip], sampling_rate=16000, return_tensors="pt")).logits
            np.testing.assert_allclose(together[i].numpy(), alone[0].numpy(), atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def onnx_export(model_dir) -> Path:
    return export_onnx(model_dir, model_dir.parent / "onnx")


def test_onnx_logits_match_pytorch_on_padded_batches(model_dir, onnx_export):
    backend = OnnxBackend(onnx_export, config=None)
    for seed, lengths in enumerate(BATCH_LENGTHS):
        batch = noise_batch(model_dir, lengths, seed)
        np.testing.assert_allclose(backend.logits(batch), pytorch_logits(model_dir, batch), atol=1e-4, rtol=0)


def test_int8_export_quantizes_the_convolutions_and_keeps_the_ranking(model_dir, onnx_export, tmp_path):
    quantized = export_onnx(model_dir, tmp_path / "int8", quantize="int8")
    import onnx

    graph = onnx.load(str(quantized)).graph
    assert "ConvInteger" in {node.op_type for node in graph.node}
    # short names (hfspeech.export.short_names): the int8 file is smaller than the fp32 one, names and all
    assert max(len(node.name) for node in graph.node) <= 16 and quantized.stat().st_size < onnx_export.stat().st_size
    assert any(node.name.startswith("/frontend/") for node in graph.node)  # still kept in float by name
    batch = noise_batch(model_dir, [16000, 12000, 8000, 4000], 3)
    got, expected = OnnxBackend(quantized, config=None).logits(batch), pytorch_logits(model_dir, batch)
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.95


def test_torchscript_export_matches_pytorch(model_dir, tmp_path):
    module = torch.jit.load(str(export_torchscript(model_dir, tmp_path)))
    # BC-ResNet stays in the default layout, in the file as in PyTorch: channels-last was slower for it.
    running = AudioClassifier.from_pretrained(str(model_dir)).backend.model
    assert layout_of_4d_weights(module) == layout_of_4d_weights(running) == {"default"}
    for seed, lengths in enumerate(BATCH_LENGTHS):
        batch = noise_batch(model_dir, lengths, seed)
        with torch.no_grad():
            got = module(*(torch.from_numpy(batch[name]) for name in ("input_values", "attention_mask"))).numpy()
        np.testing.assert_allclose(got, pytorch_logits(model_dir, batch), atol=1e-4, rtol=0)


def test_staged_repo_loads_without_hfspeech_with_the_same_logits(model_dir, tmp_path):
    from test_hub import run_without_hfspeech, usage_snippet, write_clips

    from hfspeech.hub import stage_run

    repo = tmp_path / "repo"
    stage_run(model_dir, repo, repo_id="someone/digits")
    assert json.loads((repo / "config.json").read_text())["auto_map"]["AutoModelForAudioClassification"] == \
        "modeling_bcresnet.BCResNetAudioForAudioClassification"
    assert "from hfspeech" not in (repo / "modeling_bcresnet.py").read_text()
    clips = write_clips(tmp_path / "clips")
    remote, _ = run_without_hfspeech(repo, clips, usage_snippet((repo / "README.md").read_text(), "someone/digits",
                                                                 repo, clips[0]), tmp_path)
    model = AutoModelForAudioClassification.from_pretrained(repo).eval()
    extractor = AutoFeatureExtractor.from_pretrained(repo)
    waves = [np.load(c.replace(".wav", ".npy")) for c in clips]
    with torch.no_grad():
        logits = model(**extractor(waves, sampling_rate=16000, padding=True, return_tensors="pt")).logits
    np.testing.assert_allclose(np.array(remote["logits"]), logits.numpy(), atol=1e-5)


def test_streaming_gives_the_offline_windows_with_the_onnx_export(model_dir, onnx_export):
    classifier = AudioClassifier.from_pretrained(str(onnx_export.parent))
    audio = synth_clip("high", np.random.default_rng(5), 16000, 2.3)
    stream = StreamingClassifier(classifier, 0.5, 0.25)
    chunks = [audio[i : i + 1234] for i in range(0, len(audio), 1234)]
    streamed = np.stack([w.scores for w in stream.process(chunks)])
    offline = AudioClassifier.from_pretrained(str(model_dir)).classify_waveform(audio, window_seconds=0.5,
                                                                                 hop_seconds=0.25)
    np.testing.assert_allclose(streamed, np.stack([w.scores for w in offline.windows]), atol=1e-4, rtol=0)


def test_config_rejects_a_bad_width():
    with pytest.raises(ValueError, match="width_multiplier"):
        BCResNetAudioConfig(width_multiplier=0)
    assert json.loads(BCResNetAudioConfig(width_multiplier=3).to_json_string())["width_multiplier"] == 3
