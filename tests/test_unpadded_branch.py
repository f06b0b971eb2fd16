"""Skipping the padding masks when no clip is padded: exact in PyTorch, and in the CNN's ONNX file a second graph
chosen by an `If` (`hfspeech.models.padding`, `hfspeech.export.unpadded_branch`)."""

from __future__ import annotations

import platform
import shutil

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from transformers import AutoModelForAudioClassification

from hfspeech.export import export_onnx, quantize_int8
from hfspeech.export.rewrite import same_outputs
from hfspeech.export.unpadded_branch import MAX_RELATIVE_DIFF, merge_branches, split_branches
from hfspeech.inference.backends import OnnxBackend
from tests.conftest import save_random_baseline
from tests.test_export import noise_batch, pytorch_logits

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

LABELS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    return save_random_baseline(tmp_path_factory.mktemp("cnn"), "cnn", LABELS, 0.2)


@pytest.fixture(scope="module")
def cnn_onnx(cnn, tmp_path_factory):
    return export_onnx(cnn, tmp_path_factory.mktemp("onnx"))


def run_graph(model: onnx.ModelProto, batch: dict) -> np.ndarray:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {name: value.astype(np.int64) if name == "attention_mask" else value
                              for name, value in batch.items()})[0]


def test_pytorch_skips_the_masks_only_where_they_change_nothing(cnn):
    model = AutoModelForAudioClassification.from_pretrained(cnn).eval()
    padded = {k: torch.from_numpy(v) for k, v in noise_batch(cnn, [16000, 7000], seed=0).items()}
    alone = {k: v[1:, :7000] for k, v in padded.items()}
    with torch.no_grad():
        expected = model(**alone).logits  # one clip, nothing padded: the masks are skipped
        assert torch.allclose(model(**padded).logits[1:], expected, atol=1e-5)
        model.cnn.skip_padding_masks = True  # what the padded batch would give without them
        assert not torch.allclose(model(**padded).logits[1:], expected, atol=1e-3)


def test_cnn_export_holds_both_graphs_and_each_batch_gets_the_right_one(cnn, cnn_onnx):
    model = onnx.load(str(cnn_onnx))
    assert [node.op_type for node in model.graph.node][-1] == "If"
    padded_graph, unpadded_graph = split_branches(model)
    padded = noise_batch(cnn, [16000, 6000, 11000], seed=1)
    full = noise_batch(cnn, [16000, 16000], seed=2)
    backend = OnnxBackend(cnn_onnx, None)
    for batch in (padded, full):
        np.testing.assert_allclose(backend.logits(batch), pytorch_logits(cnn, batch), atol=1e-4, rtol=0)
    # The unpadded graph alone is wrong on a padded batch: the merged file's right answer came from the other.
    assert np.abs(run_graph(unpadded_graph, padded) - pytorch_logits(cnn, padded)).max() > 1e-3
    np.testing.assert_allclose(run_graph(unpadded_graph, full), pytorch_logits(cnn, full), atol=1e-4, rtol=0)
    np.testing.assert_allclose(run_graph(padded_graph, padded), pytorch_logits(cnn, padded), atol=1e-4, rtol=0)


def test_split_then_merge_gives_the_same_file_outputs(cnn_onnx, tmp_path):
    merged = merge_branches(*split_branches(onnx.load(str(cnn_onnx))))
    onnx.save(merged, str(tmp_path / "again.onnx"))
    assert same_outputs(cnn_onnx, tmp_path / "again.onnx", MAX_RELATIVE_DIFF)


def test_weights_live_in_each_branch_so_onnxruntime_blocks_the_convolutions(cnn_onnx, tmp_path):
    """Read from the main graph, a branch's weights are not constants to onnxruntime, which then runs its
    convolutions without the NCHWc layout (slower than the file without a branch; measured)."""
    model = onnx.load(str(cnn_onnx))
    branches = [a.g for a in model.graph.node[-1].attribute]
    read = {name for branch in branches for node in branch.node if node.op_type == "Conv" for name in node.input[1:]}
    stored = {tensor.name for branch in branches for tensor in branch.initializer}
    assert read and read <= stored
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("onnxruntime's NCHWc kernels are x86 only")
    options = onnxruntime.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "running.onnx")
    onnxruntime.InferenceSession(str(cnn_onnx), options, providers=["CPUExecutionProvider"])
    running = onnx.load(str(tmp_path / "running.onnx"))
    then_branch = next(a.g for a in running.graph.node[-1].attribute if a.name == "then_branch")
    assert {(node.domain, node.op_type) for node in then_branch.node} >= {("com.microsoft.nchwc", "Conv")}


def test_int8_weights_keep_both_graphs_and_dynamic_int8_the_padded_one(cnn, cnn_onnx, tmp_path):
    """int8 weights (float compute) are for speed; dynamic int8 for size (`hfspeech.export.unpadded_branch`)."""
    from hfspeech.export.quantization import write_int8_weights

    shutil.copytree(cnn_onnx.parent, tmp_path / "weights")
    weights = write_int8_weights(tmp_path / "weights" / "model.onnx")
    dynamic = quantize_int8(cnn_onnx, output_dir=tmp_path / "dynamic")
    graphs = split_branches(onnx.load(str(weights)))
    int8_weights = [sum(t.data_type == onnx.TensorProto.INT8 for t in g.graph.initializer) for g in graphs]
    assert len(int8_weights) == 2 and int8_weights[0] == int8_weights[1] > 0
    dynamic_graph = onnx.load(str(dynamic)).graph
    assert split_branches(onnx.load(str(dynamic))) is None
    assert sum(node.op_type == "ConvInteger" for node in dynamic_graph.node) == 4
    assert (tmp_path / "dynamic" / "config.json").is_file()
    batch = noise_batch(cnn, [16000, 9000], seed=3)
    expected = pytorch_logits(cnn, batch)
    for quantized in (weights, dynamic):
        got = OnnxBackend(quantized, None).logits(batch)
        assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.95


def test_bcresnet_export_stays_one_graph(tmp_path):
    """BC-ResNet keeps its int8 file small for the edge: no second graph (`onnx_unpadded_branch`)."""
    model_dir = save_random_baseline(tmp_path / "bc", "bcresnet", LABELS, 0.2)
    assert "If" not in {node.op_type for node in onnx.load(str(export_onnx(model_dir, tmp_path / "onnx"))).graph.node}
