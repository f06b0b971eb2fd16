"""Keep the front end's DFT basis out of the ONNX file: nodes that compute it replace the stored constant.

The baselines' front end takes each frame's DFT as a matrix product with a windowed DFT basis
(`hfspeech.features.frontend`), which the exporter writes into the graph as a constant: ~0.8 MB of float32
at `n_fft=512`, twice the weights of the default CNN. Those values are cosines and sines of integer
multiples of `2 pi / n_fft` times the window, so a dozen small nodes (`Range`, `Mul`, `Mod`, `Cos`, `Sin`)
and the window (`win_length` values) compute them instead. They depend on no input, so onnxruntime folds
them into a constant when it opens the file: the running graph is the same, the file is smaller. The
values are computed as `_windowed_dft_basis` computes them (float64, angles reduced modulo `n_fft`, rounded
once to float32); the rewritten graph is checked against the original before it replaces it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hfspeech.export.rewrite import replace_if_same_outputs

MAX_ABS_DIFF = 1e-6


def _basis_nodes(name: str, output: str, window: np.ndarray, offset: int, n_fft: int) -> list:
    """Nodes computing `window[:, None] * [cos, -sin](2 pi ((offset + n) k mod n_fft) / n_fft)` into `output`."""
    def const(suffix, value):
        return helper.make_node("Constant", [], [f"{name}/{suffix}"], name=f"{name}/{suffix}",
                                value=numpy_helper.from_array(np.asarray(value), f"{name}/{suffix}"))

    t = lambda suffix: f"{name}/{suffix}"  # noqa: E731
    win, bins = len(window), n_fft // 2 + 1
    return [
        const("n_start", np.int64(offset)), const("n_stop", np.int64(offset + win)), const("one", np.int64(1)),
        const("zero", np.int64(0)), const("k_stop", np.int64(bins)), const("n_fft", np.int64(n_fft)),
        const("axis1", np.array([1], np.int64)), const("axis0", np.array([0], np.int64)),
        const("two_pi", np.float64(2 * np.pi)), const("n_fft_f", np.float64(n_fft)),
        const("window", window.astype(np.float64)[:, None]),
        helper.make_node("Range", [t("n_start"), t("n_stop"), t("one")], [t("n")], name=t("range_n")),
        helper.make_node("Range", [t("zero"), t("k_stop"), t("one")], [t("k")], name=t("range_k")),
        helper.make_node("Unsqueeze", [t("n"), t("axis1")], [t("n_col")], name=t("n_col")),
        helper.make_node("Unsqueeze", [t("k"), t("axis0")], [t("k_row")], name=t("k_row")),
        helper.make_node("Mul", [t("n_col"), t("k_row")], [t("nk")], name=t("nk")),
        helper.make_node("Mod", [t("nk"), t("n_fft")], [t("nk_mod")], name=t("nk_mod")),
        helper.make_node("Cast", [t("nk_mod")], [t("nk_f")], name=t("nk_f"), to=TensorProto.DOUBLE),
        helper.make_node("Mul", [t("two_pi"), t("nk_f")], [t("scaled")], name=t("scaled")),
        helper.make_node("Div", [t("scaled"), t("n_fft_f")], [t("angles")], name=t("angles")),
        helper.make_node("Cos", [t("angles")], [t("cos")], name=t("cos")),
        helper.make_node("Sin", [t("angles")], [t("sin")], name=t("sin")),
        helper.make_node("Neg", [t("sin")], [t("minus_sin")], name=t("minus_sin")),
        helper.make_node("Concat", [t("cos"), t("minus_sin")], [t("cos_sin")], name=t("cos_sin"), axis=1),
        helper.make_node("Mul", [t("cos_sin"), t("window")], [t("basis64")], name=t("basis64")),
        helper.make_node("Cast", [t("basis64")], [output], name=t("basis"), to=TensorProto.FLOAT),
    ]


def compact_dft_basis(onnx_path: str | Path, frontend) -> bool:
    """Rewrite `onnx_path` in place with the basis of `frontend` (an `AudioFrontend`) computed by nodes;
    False (file untouched) when the graph holds no such constant or the rewrite would change the outputs."""
    onnx_path = Path(onnx_path)
    model = onnx.load(str(onnx_path))
    basis = frontend.dft_basis.cpu().numpy()
    for position, node in enumerate(model.graph.node):
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            value = numpy_helper.to_array(node.attribute[0].t)
            if value.shape == basis.shape and np.array_equal(value, basis):
                break
    else:
        return False
    window = frontend.window_weights()
    nodes = _basis_nodes(node.name, node.output[0], window, frontend.window_offset, frontend.n_fft)
    del model.graph.node[position]
    for offset, new in enumerate(nodes):
        model.graph.node.insert(position + offset, new)
    return replace_if_same_outputs(onnx_path, model, ".compact.onnx", "the computed DFT basis", MAX_ABS_DIFF)
