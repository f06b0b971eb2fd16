"""Convolution weights of transformer encoders stored as int8, computed in float (weight-only int8).

Dynamic int8 quantizes MatMul/Gemm, where most of a transformer's weights are. What it leaves in float32
is mostly convolution weights: Whisper's two stem convolutions (a quarter of tiny.en's int8 file),
Wav2Vec2's feature encoder and positional convolution (36 of its 122 MB). Quantizing those as operators
(ConvInteger) also quantizes their activations: it flipped near-tied labels and ran slower than float
(`hfspeech.export.quantization`). Storing only the weights as int8 keeps the activations in float:

* each weight becomes per-output-channel symmetric int8 (scale = the channel's largest magnitude / 127),
  so the rounding error of a weight is at most half a step of its channel, as for the MatMul weights;
* the graph turns it back into float with `Cast` and `Mul` by the scales, not `DequantizeLinear`: both read
  only constants, so onnxruntime folds them into a float weight when it opens the file, and the running graph
  is the float one (its blocked NCHWc convolutions included). onnxruntime keeps `DequantizeLinear` unfolded
  (for its QDQ fusions) unless told otherwise per session: the CNN's convolutions then lost their NCHWc form
  and ran 20% slower;
* onnxruntime's `onnxruntime.quantization` has weight-only quantization for MatMul and Gather only
  (`MatMulNBitsQuantizer`), hence this small rewrite for Conv.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hfspeech.export.rewrite import tensor_readers

# Smaller convolutions stay float32: their scales and two nodes would cost about what int8 saves.
MIN_ELEMENTS = 256
INT8_RANGE = 127


def channel_int8(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (axis 0) symmetric int8 values of a float weight, and their float32 scales shaped
    ``[channels, 1, ...]`` to broadcast against them (as the graph's `Mul` does)."""
    largest = np.abs(weight.reshape(weight.shape[0], -1)).max(axis=1)
    scale = np.where(largest > 0, largest / INT8_RANGE, 1.0).astype(np.float32)
    scale = scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    values = np.clip(np.rint(weight / scale), -INT8_RANGE, INT8_RANGE).astype(np.int8)
    return values, scale


def float_conv_weights(graph: onnx.GraphProto) -> list[TensorProto]:
    """float32 initializers of at least MIN_ELEMENTS values that only Conv nodes read, as their weight."""
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    readers = tensor_readers(graph)
    return [tensor for name, tensor in initializers.items()
            if tensor.data_type == TensorProto.FLOAT and int(np.prod(tensor.dims)) >= MIN_ELEMENTS
            and set(readers.get(name, ())) == {("Conv", 1)}]


def largest_conv_weight(graph: onnx.GraphProto) -> int:
    """How many values the graph's largest float32 convolution weight holds (0: no convolution): what a refusal
    says when `float_conv_weights` finds none, as in the tiniest CNNs, whose convolutions are all below
    MIN_ELEMENTS."""
    readers = tensor_readers(graph)
    return max((int(np.prod(tensor.dims)) for tensor in graph.initializer
                if tensor.data_type == TensorProto.FLOAT and ("Conv", 1) in readers.get(tensor.name, ())), default=0)


def store_conv_weights_int8(onnx_path: str | Path, output_path: Optional[str | Path] = None) -> int:
    """Write `onnx_path` with its float convolution weights stored as int8 to `output_path` (default: in place);
    returns how many. Nothing is written when there are none."""
    model = onnx.load(str(onnx_path))
    graph = model.graph
    weights = float_conv_weights(graph)
    dequantize_nodes = []
    for tensor in weights:
        values, scale = channel_int8(numpy_helper.to_array(tensor))
        name = tensor.name
        graph.initializer.remove(tensor)
        graph.initializer.extend([numpy_helper.from_array(values, f"{name}_int8"),
                                  numpy_helper.from_array(scale, f"{name}_scale")])
        # The product takes the weight's name, so the Conv nodes read it unchanged.
        dequantize_nodes += [helper.make_node("Cast", [f"{name}_int8"], [f"{name}_float"], to=TensorProto.FLOAT),
                             helper.make_node("Mul", [f"{name}_float", f"{name}_scale"], [name])]
    if weights:
        nodes = dequantize_nodes + list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes)
        onnx.save(model, str(output_path or onnx_path))
    return len(weights)
