"""Baseline ONNX files store the mel bank sparse and BatchNorms folded (`hfspeech.export.slim`): smaller files that
compute what the PyTorch model computes, and a BC-ResNet-3 whose int8 file fits the issue's 150 KB."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from transformers import AutoModelForAudioClassification

from hfspeech.export import export_onnx
from hfspeech.export.slim import fold_batch_norms, sparse_constants
from hfspeech.inference.backends import OnnxBackend
from tests.conftest import save_random_baseline
from tests.test_export import noise_batch, pytorch_logits

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

DIGITS = [str(digit) for digit in range(10)]


def with_random_batch_norm_statistics(model_dir):
    """The saved model with every BatchNorm given random statistics and affine parameters, so that folding
    them has something to get wrong (fresh ones are the identity)."""
    model = AutoModelForAudioClassification.from_pretrained(model_dir)
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(0.3 * torch.randn(size, generator=generator))
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(0.3 * torch.randn(size, generator=generator))
    model.save_pretrained(model_dir)
    return model_dir


@pytest.fixture(scope="module")
def bc3(tmp_path_factory):
    """A BC-ResNet-3 (54k parameters, 40 mels, 10 classes, mel bank up to 4 kHz as the FSDD recipe has it)."""
    folder = tmp_path_factory.mktemp("bc3") / "model"
    save_random_baseline(folder, "bcresnet", DIGITS, 0.02, width_multiplier=3, f_max=4000,
                         apply_spec_augment=False, max_length_seconds=1.0)
    return with_random_batch_norm_statistics(folder)


def test_bcresnet_export_folds_batch_norms_and_stores_the_mel_bank_sparse(bc3, tmp_path):
    path = export_onnx(bc3, tmp_path / "onnx")
    graph = onnx.load(str(path)).graph
    assert not [node for node in graph.node if node.op_type == "BatchNormalization"]
    sparse = [node for node in graph.node if node.op_type == "Constant" and node.attribute[0].name == "sparse_value"]
    assert [list(node.attribute[0].sparse_tensor.dims) for node in sparse] == [[257, 40]]
    batch = noise_batch(bc3, [16000, 5000, 11000], seed=2)
    got, expected = OnnxBackend(path, None).logits(batch), pytorch_logits(bc3, batch)
    # a random BC-ResNet's logits run to thousands: float32 agreement is relative to the largest
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


def test_bcresnet_3_int8_file_fits_150_kb_and_keeps_the_ranking(bc3, tmp_path):
    quantized = export_onnx(bc3, tmp_path / "int8", quantize="int8")
    assert quantized.stat().st_size <= 150 * 1024  # issue 17's target; 187 KB before these rewrites
    batch = noise_batch(bc3, [16000, 12000, 8000, 4000], 3)
    got, expected = OnnxBackend(quantized, config=None).logits(batch), pytorch_logits(bc3, batch)
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.95


def run(model: onnx.ModelProto, feed: dict) -> np.ndarray:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


def test_folded_batch_norm_computes_the_same_and_sparse_keeps_dense_constants_dense():
    rng = np.random.default_rng(0)
    channels, epsilon = 6, 1e-3
    mostly_zero = np.zeros((64, 32), np.float32)
    mostly_zero[rng.integers(0, 64, 40), rng.integers(0, 32, 40)] = rng.standard_normal(40)
    dense = rng.standard_normal((32, 48)).astype(np.float32)
    parameters = [numpy_helper.from_array(value.astype(np.float32), name) for name, value in
                  [("scale", rng.standard_normal(channels)), ("shift", rng.standard_normal(channels)),
                   ("mean", rng.standard_normal(channels)), ("var", rng.uniform(0.1, 2.0, channels))]]
    nodes = [helper.make_node("Constant", [], ["sparse_one"], value=numpy_helper.from_array(mostly_zero)),
             helper.make_node("Constant", [], ["dense_one"], value=numpy_helper.from_array(dense)),
             helper.make_node("MatMul", ["x", "sparse_one"], ["h"]),
             helper.make_node("MatMul", ["h", "dense_one"], ["y"]),
             helper.make_node("BatchNormalization", ["y", "scale", "shift", "mean", "var"], ["z"], epsilon=epsilon)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6, 5, 64])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], parameters)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feed = {"x": rng.standard_normal((2, 6, 5, 64)).astype(np.float32)}
    before = run(model, feed)
    assert sparse_constants(model.graph) == 1 and fold_batch_norms(model) == 1
    assert [node.attribute[0].name for node in model.graph.node if node.op_type == "Constant"] == \
        ["sparse_value", "value"]
    assert "BatchNormalization" not in {node.op_type for node in model.graph.node}
    np.testing.assert_allclose(run(model, feed), before, rtol=1e-5, atol=1e-5)
