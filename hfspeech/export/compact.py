"""Keep the front end's DFT bases out of the ONNX file: nodes that compute them replace the stored constants.

The baselines' front end takes each frame's DFT as two matrix products with DFT bases (the even and the odd
bins; `hfspeech.features.frontend`), which the exporter writes into the graph as constants: ~0.5 MB of
float32 at `n_fft=512`, more than the weights of the default CNN. Those values are cosines and sines of
integer multiples of `2 pi / n_fft`, so a dozen small nodes (`Range`, `Mul`, `Mod`, `Cos`, `Sin`) compute
them instead. They depend on no input, so onnxruntime folds them into constants when it opens the file: the
running graph is the same, the file is smaller. The values are computed as `dft_basis` computes them
(float64, angles reduced modulo `n_fft`, rounded once to float32); the rewritten graph is checked against
the original before it replaces it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hfspeech.export.rewrite import replace_if_same_outputs
from hfspeech.features.frontend import DftBins, dft_basis

MAX_ABS_DIFF = 1e-6


def _basis_nodes(name: str, output: str, bins: DftBins) -> list:
    """Nodes computing `dft_basis(bins)` into `output`: `[cos, -sin](2 pi (n k mod n_fft) / n_fft)` for samples
    `n < n_fft / 2` (rows) and bins `k = first, first + 2, ...` (columns)."""
    def const(suffix, value):
        return helper.make_node("Constant", [], [f"{name}/{suffix}"], name=f"{name}/{suffix}",
                                value=numpy_helper.from_array(np.asarray(value), f"{name}/{suffix}"))

    t = lambda suffix: f"{name}/{suffix}"  # noqa: E731
    return [
        const("zero", np.int64(0)), const("n_stop", np.int64(bins.n_fft // 2)), const("one", np.int64(1)),
        const("k_start", np.int64(bins.first)), const("k_stop", np.int64(bins.first + 2 * bins.num_bins)),
        const("two", np.int64(2)), const("n_fft", np.int64(bins.n_fft)),
        const("axis1", np.array([1], np.int64)), const("axis0", np.array([0], np.int64)),
        const("two_pi", np.float64(2 * np.pi)), const("n_fft_f", np.float64(bins.n_fft)),
        helper.make_node("Range", [t("zero"), t("n_stop"), t("one")], [t("n")], name=t("range_n")),
        helper.make_node("Range", [t("k_start"), t("k_stop"), t("two")], [t("k")], name=t("range_k")),
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
        helper.make_node("Cast", [t("cos_sin")], [output], name=t("basis"), to=TensorProto.FLOAT),
    ]


def _constant_position(graph, value: np.ndarray) -> int | None:
    """Index of the graph's `Constant` node that holds exactly `value`, if any."""
    for position, node in enumerate(graph.node):
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            stored = numpy_helper.to_array(node.attribute[0].t)
            if stored.shape == value.shape and np.array_equal(stored, value):
                return position
    return None


def compact_dft_basis(onnx_path: str | Path, frontend) -> bool:
    """Rewrite `onnx_path` in place with the DFT bases of `frontend` (an `AudioFrontend`: the even and the odd
    bins') computed by nodes; False (file untouched) when the graph holds no such constant or the rewrite would
    change the outputs."""
    onnx_path = Path(onnx_path)
    model = onnx.load(str(onnx_path))
    replaced = 0
    for bins in frontend.dft_bins:
        position = _constant_position(model.graph, dft_basis(bins).astype(np.float32))
        if position is None:
            continue
        node = model.graph.node[position]
        del model.graph.node[position]
        for offset, new in enumerate(_basis_nodes(node.name, node.output[0], bins)):
            model.graph.node.insert(position + offset, new)
        replaced += 1
    if not replaced:
        return False
    return replace_if_same_outputs(onnx_path, model, ".compact.onnx", "the computed DFT basis", MAX_ABS_DIFF)
