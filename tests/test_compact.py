"""The ONNX export computes the front end's DFT basis instead of storing it, and runs as before."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from hfspeech.export import export_onnx
from hfspeech.inference.backends import OnnxBackend
from tests.conftest import save_random_baseline
from tests.test_export import noise_batch, pytorch_logits

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def test_the_dft_basis_is_computed_in_the_graph_not_stored(tmp_path):
    model = save_random_baseline(tmp_path / "cnn", "cnn", ["a", "b", "c"], 0.5, conv_channels=[4, 8])
    path = export_onnx(model, tmp_path / "onnx")
    graph = onnx.load(str(path)).graph
    tensors = [numpy_helper.to_array(t) for t in graph.initializer]
    tensors += [numpy_helper.to_array(node.attribute[0].t) for node in graph.node
                if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value"]
    assert max(t.size for t in tensors) < 400 * 257  # the basis would be [400, 514]: the largest left is the mel bank
    assert path.stat().st_size < 0.3e6  # ~0.82 MB with the basis stored
    assert any(node.op_type == "Cos" and "/frontend/" in node.name for node in graph.node)
    batch = noise_batch(model, [16000, 5000, 900], seed=3)
    np.testing.assert_allclose(OnnxBackend(path, None).logits(batch), pytorch_logits(model, batch), atol=1e-4, rtol=0)
