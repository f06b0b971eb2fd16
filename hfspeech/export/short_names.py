"""Short tensor and node names in an exported baseline's int8 ONNX file: a smaller file, the same graph.

The exporter names every node and intermediate tensor after its module path
(`/bcresnet/stages.3/stages.3.3/temporal_conv/Conv_output_0`), and dynamic int8 quantization adds four or
five nodes per convolution, each with a longer name still. For an edge model of a few thousand weights those
strings are most of the file: BC-ResNet-1's int8 file was 319 KB, of which 73 KB tensors; with names `t0`,
`t1`... it is 118 KB. Inputs and outputs keep their names, front-end nodes a short `/frontend/N` (the runtimes feed and read them by name); the
rewritten file is checked against the original on a padded batch before it replaces it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx

logger = logging.getLogger(__name__)
FRONT_END = "/frontend/"


def shorten_names(onnx_path: str | Path) -> bool:
    """Rewrite `onnx_path` in place with short names; False (file untouched) if the outputs would change."""
    onnx_path = Path(onnx_path)
    model = onnx.load(str(onnx_path))
    graph = model.graph
    kept = {value.name for value in graph.input} | {value.name for value in graph.output}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in kept:
            return name
        return names.setdefault(name, f"t{len(names):x}")

    for tensor in graph.initializer:
        tensor.name = short(tensor.name)
    for number, node in enumerate(graph.node):
        # front-end nodes stay recognisable (`quantization.front_end_nodes`, which keeps them in float)
        node.name = f"/frontend/{number:x}" if FRONT_END in node.name else ""
        node.doc_string = ""
        node.input[:] = [short(name) for name in node.input]
        node.output[:] = [short(name) for name in node.output]
    del graph.value_info[:]  # shape annotations by the old names; onnxruntime infers them again
    rewritten = onnx_path.with_suffix(".short.onnx")
    onnx.save(model, str(rewritten))
    if not _same_outputs(onnx_path, rewritten):
        rewritten.unlink()
        logger.warning("%s: renaming changed the outputs; the file is kept as it was", onnx_path)
        return False
    rewritten.replace(onnx_path)
    return True


def _same_outputs(original: Path, rewritten: Path) -> bool:
    import onnxruntime

    sessions = [onnxruntime.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (original, rewritten)]
    rng = np.random.default_rng(0)
    mask = np.ones((2, 16000), np.int64)
    mask[1, 9000:] = 0
    feed = {node.name: rng.standard_normal((2, 16000)).astype(np.float32) if node.type == "tensor(float)" else mask
            for node in sessions[0].get_inputs()}
    return all(np.array_equal(a, b) for a, b in zip(*(session.run(None, feed) for session in sessions)))
