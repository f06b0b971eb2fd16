"""Short tensor and node names in an exported baseline's int8 ONNX file: a smaller file, the same graph.

The exporter names every node and intermediate tensor after its module path
(`/bcresnet/stages.3/stages.3.3/temporal_conv/Conv_output_0`), and dynamic int8 quantization adds four or
five nodes per convolution, each with a longer name still. For an edge model of a few thousand weights those
strings are most of the file: BC-ResNet-1's int8 file was 319 KB, of which 73 KB tensors; with names `t0`,
`t1`... it is 118 KB. Inputs and outputs keep their names (the runtimes feed and read them by name),
front-end nodes a short `/frontend/N`; the rewritten file is checked against the original on a padded batch
before it replaces it.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from hfspeech.export.rewrite import replace_if_same_outputs

FRONT_END = "/frontend/"  # in the name of every node of a baseline's in-model front end (the exporter's module path)


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
        node.name = f"{FRONT_END}{number:x}" if FRONT_END in node.name else ""
        node.doc_string = ""
        node.input[:] = [short(name) for name in node.input]
        node.output[:] = [short(name) for name in node.output]
    del graph.value_info[:]  # shape annotations by the old names; onnxruntime infers them again
    return replace_if_same_outputs(onnx_path, model, ".short.onnx", "renaming")
