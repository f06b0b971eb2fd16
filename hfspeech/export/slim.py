"""Smaller baseline ONNX files, the same computation: mostly-zero constants stored sparse, inference-mode
BatchNorms folded into one scale and one shift.

After the DFT basis (`hfspeech.export.compact`) and the names (`hfspeech.export.short_names`), what made an
edge model's int8 file large was float32 that is not weights. BC-ResNet-3 (54k parameters, 48 KB of int8
weights) had an int8 file of 187 KB:

* the mel filter bank, a `[n_fft // 2 + 1, n_mels]` float32 constant (41 KB at 512 points and 40 mels), of
  which 2.4% is non-zero (each filter is a triangle a few bins wide; with `f_max` below Nyquist the upper bins
  are all zero). ONNX stores it as a sparse tensor (the non-zero values and their flat positions, `Constant`'s
  `sparse_value`), which onnxruntime turns back into the same dense matrix when it opens the file: 6 KB,
  bit-for-bit the same products;
* SubSpectralNorm's BatchNorms (45 KB): a BatchNorm that follows a reshape cannot be fused into the
  convolution before it, so the exporter keeps its four vectors (scale, shift, mean, variance), each one value
  per channel and sub-band. In inference it is `x * s + b` with `s = scale / sqrt(var + eps)` and
  `b = shift - mean * s`: two vectors and a `Mul` and an `Add`, half the bytes.

The rewritten graph must give the same outputs as before (within `MAX_RELATIVE_DIFF` of the largest logit, at
least 1, on a padded batch) or the file is left as it was (`hfspeech.export.rewrite`). It runs on the fp32
export, before any quantization, so the int8 file gets both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hfspeech.export.rewrite import replace_if_same_outputs, tensor_readers

# Smaller constants cost a node's worth of bytes either way.
MIN_SPARSE_ELEMENTS = 1024
# Sparse pays when the values and their int64 positions take at most half the dense float32 bytes.
MAX_SPARSE_FRACTION = 1 / 6
MAX_RELATIVE_DIFF = 1e-5


def sparse_constants(graph: onnx.GraphProto) -> int:
    """Store each large, mostly-zero float32 `Constant` as a sparse tensor; returns how many."""
    count = 0
    for node in graph.node:
        if node.op_type != "Constant" or len(node.attribute) != 1 or node.attribute[0].name != "value":
            continue
        tensor = node.attribute[0].t
        if tensor.data_type != TensorProto.FLOAT or int(np.prod(tensor.dims)) < MIN_SPARSE_ELEMENTS:
            continue
        dense = numpy_helper.to_array(tensor)
        positions = np.flatnonzero(dense)
        if len(positions) > MAX_SPARSE_FRACTION * dense.size:
            continue
        values = numpy_helper.from_array(dense.ravel()[positions], node.output[0])
        indices = numpy_helper.from_array(positions.astype(np.int64), f"{node.output[0]}_positions")
        del node.attribute[:]
        node.attribute.append(helper.make_attribute("sparse_value",
                                                    helper.make_sparse_tensor(values, indices, list(dense.shape))))
        count += 1
    return count


def fold_batch_norms(model: onnx.ModelProto) -> int:
    """Replace each inference-mode BatchNormalization whose parameters are initializers read by it alone with a
    `Mul` and an `Add` by per-channel vectors (computed in float64, rounded once); returns how many."""
    graph = model.graph
    ranks = input_ranks(model)
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    readers = tensor_readers(graph)
    nodes, count = [], 0
    for node in graph.node:
        parameters = list(node.input[1:])
        foldable = (node.op_type == "BatchNormalization" and len(node.output) == 1 and len(parameters) == 4
                    and all(name in initializers and len(readers[name]) == 1 for name in parameters)
                    and ranks.get(node.input[0], 0) >= 2
                    and not any(a.name == "training_mode" and a.i for a in node.attribute))
        if not foldable:
            nodes.append(node)
            continue
        epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        scale, shift, mean, variance = (numpy_helper.to_array(initializers[n]).astype(np.float64) for n in parameters)
        factor = scale / np.sqrt(variance + np.float64(np.float32(epsilon)))
        shape = (-1,) + (1,) * (ranks[node.input[0]] - 2)  # channels on axis 1 of X
        for name in parameters:
            graph.initializer.remove(initializers[name])
        output = node.output[0]
        graph.initializer.extend([
            numpy_helper.from_array(factor.astype(np.float32).reshape(shape), f"{output}_factor"),
            numpy_helper.from_array((shift - mean * factor).astype(np.float32).reshape(shape), f"{output}_offset"),
        ])
        nodes += [helper.make_node("Mul", [node.input[0], f"{output}_factor"], [f"{output}_scaled"],
                                   name=f"{node.name}/scale"),
                  helper.make_node("Add", [f"{output}_scaled", f"{output}_offset"], [output],
                                   name=f"{node.name}/shift")]
        count += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return count


def input_ranks(model: onnx.ModelProto) -> dict[str, int]:
    """Rank of every tensor whose rank ONNX shape inference knows."""
    inferred = onnx.shape_inference.infer_shapes(model).graph
    values = list(inferred.value_info) + list(inferred.input) + list(inferred.output)
    return {value.name: len(value.type.tensor_type.shape.dim) for value in values
            if value.type.tensor_type.HasField("shape")}


def slim_onnx(onnx_path: str | Path) -> bool:
    """Rewrite `onnx_path` in place with sparse constants and folded BatchNorms; False (file untouched) when
    there is nothing to change or the outputs would change."""
    onnx_path = Path(onnx_path)
    model = onnx.load(str(onnx_path))
    if not sparse_constants(model.graph) + fold_batch_norms(model):
        return False
    return replace_if_same_outputs(onnx_path, model, ".slim.onnx", "sparse constants and folded BatchNorms",
                                   MAX_RELATIVE_DIFF)
