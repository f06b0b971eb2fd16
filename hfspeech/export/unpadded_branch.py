"""One ONNX file, two graphs: the exported model as it is, and the same model without padding masks for
batches in which no clip is padded, chosen per batch by an `If` on the attention mask.

Why: the convolutional baselines zero the frames past each clip's end before every convolution
(`hfspeech.models.padding`), which keeps a clip's logits the same alone and in a padded batch. In
onnxruntime each of those products splits the NCHWc convolution chain with two layout reorders: the demo
CNN spent ~25% of its time on them at one thread (measured 2026-12-02), for batches where the mask is all
ones. PyTorch skips the products when no clip is padded; a traced graph cannot, so the export traces the model
twice (`skip_padding_masks`) and stores both graphs here.

Layout of the merged graph: the nodes both graphs share (the front end's fixed matrices, anything computed the same
way from the same inputs, convolutions excepted) run once in the main graph; `If(all of attention_mask is 1)` then
runs the rest of the unpadded graph (`then_branch`) or of the padded one (`else_branch`). The CNN's unpadded graph
does not read the attention mask at all (nothing to mask), so its front end runs in the branch without the masking
(~5% faster than sharing the masked one). Each branch stores the weights it reads (onnxruntime's NCHWc convolutions
take no weights from the main graph), so the file holds the convolution weights twice: the demo CNN's fp32 file is
~0.87 MB instead of 0.45 MB, for 1.25x the speed on unpadded batches (21.9 vs 27.3 ms per batch of 16 at one
thread; padded batches 27.7 vs 26.3 ms). Models choose it with `onnx_unpadded_branch` (the CNN; not BC-ResNet,
whose int8 file must stay small for the edge). `split_branches` takes the file apart again: quantization works on
plain graphs. `--quantize int8_weights` (float compute) and static int8 (integer convolutions chained in uint8,
which the masks' float products would break) keep both graphs; dynamic int8 keeps the padded one only
(`padded_graph`): that file is for size (the CNN's 0.12 MB would be 0.25 MB), and its `ConvInteger`s gained little
from the second graph (29.5 against 32.0 ms). A rewritten file replaces the original only if batches with and
without padding give its outputs.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional

import onnx
from onnx import TensorProto, helper, numpy_helper

from hfspeech.export.rewrite import replace_if_same_outputs

logger = logging.getLogger(__name__)

PREFIX = "unpadded/"  # names of the nodes that choose the branch, and of values only the unpadded graph has
IF_NODE = PREFIX + "If"
ATTENTION_MASK = "attention_mask"
MAX_RELATIVE_DIFF = 1e-5
# Convolutions stay in the branches even where both graphs compute the same one: onnxruntime runs a chain of
# convolutions in its blocked NCHWc layout, and a chain cut at the branch boundary costs a layout reorder
# (the demo CNN's first convolution shared: 1.8 ms more per batch of 16, one thread, measured 2026-12-02).
UNSHARED_OPS = {"Conv", "ConvInteger", "QLinearConv"}


def _node_key(node: onnx.NodeProto, inputs: list[str]) -> tuple:
    attributes = tuple(sorted((a.name, a.SerializeToString()) for a in node.attribute))
    return node.domain, node.op_type, tuple(inputs), attributes


def _tensor_key(tensor: TensorProto) -> tuple:
    return tensor.data_type, tuple(tensor.dims), numpy_helper.to_array(tensor).tobytes()


def _branch(name: str, nodes: list, outputs: list[onnx.ValueInfoProto], produced: dict[str, str]) -> onnx.GraphProto:
    """A branch graph: `nodes` (inputs from the main graph), whose values named `produced[output]` are the
    outputs of the model."""
    values = [helper.make_tensor_value_info(produced[o.name], o.type.tensor_type.elem_type, None) for o in outputs]
    return helper.make_graph(nodes, name, [], values)


def _renamed(node: onnx.NodeProto, rename: Callable[[str], str], name: Optional[str] = None) -> onnx.NodeProto:
    """A copy of `node` reading and writing the values `rename` maps its names to (and called `name` if given)."""
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    copy.input[:] = [rename(value) for value in node.input]
    copy.output[:] = [rename(value) for value in node.output]
    if name is not None:
        copy.name = name
    return copy


def _one_node_per_constant(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` in which equal Constant nodes are one: the exporter writes one per use, and a node of
    the other graph can only be matched when its inputs are the same values."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    first: dict[tuple, str] = {}
    same: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type == "Constant":
            same[node.output[0]] = first.setdefault(_node_key(node, []), node.output[0])
    kept = [node for node in model.graph.node if node.op_type != "Constant" or same[node.output[0]] == node.output[0]]
    for node in kept:
        node.input[:] = [same.get(name, name) for name in node.input]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def _convolution_inputs(graph: onnx.GraphProto) -> set[int]:
    """Positions of the convolutions and of every node their weights come from (e.g. int8 weights turned to
    float): computed in the main graph, a weight reaches a branch as a value, not an initializer, and onnxruntime
    then runs the convolution without NCHWc (the demo CNN's int8-weight file: 26.2 instead of 21.3 ms)."""
    producer = {name: position for position, node in enumerate(graph.node) for name in node.output}
    kept, pending = set(), [p for p, node in enumerate(graph.node) if node.op_type in UNSHARED_OPS]
    while pending:
        position = pending.pop()
        if position not in kept:
            kept.add(position)
            node = graph.node[position]
            weights = node.input[1:] if node.op_type in UNSHARED_OPS else node.input
            pending.extend(producer[name] for name in weights if name in producer)
    return kept


def _merge_initializers(graph: onnx.GraphProto, other: onnx.GraphProto, alias: dict[str, str]) -> list:
    """`graph`'s initializers plus those of `other` that `graph` has not (by value), renamed where a name is
    taken; `alias` learns the name each of `other`'s initializers has in the result."""
    stored = {_tensor_key(t): t.name for t in graph.initializer}
    taken = {t.name for t in graph.initializer} | {o for n in graph.node for o in n.output} | set(alias)
    initializers = list(graph.initializer)
    for tensor in other.initializer:
        key = _tensor_key(tensor)
        if key not in stored:
            renamed = TensorProto()
            renamed.CopyFrom(tensor)
            renamed.name = PREFIX + tensor.name if tensor.name in taken else tensor.name
            stored[key] = renamed.name
            initializers.append(renamed)
        alias[tensor.name] = stored[key]
    return initializers


def merge_branches(padded: onnx.ModelProto, unpadded: onnx.ModelProto) -> Optional[onnx.ModelProto]:
    """`padded` with `unpadded` as the branch for batches without padding; None when the two cannot be merged
    (no attention mask input, inputs `padded` lacks, different outputs or opsets). `unpadded` may lack the
    attention mask: it has nothing to mask."""
    padded = _one_node_per_constant(padded)
    graph, other = padded.graph, unpadded.graph
    input_names = [value.name for value in graph.input]
    if ATTENTION_MASK not in input_names or not {value.name for value in other.input} <= set(input_names) \
            or [o.name for o in graph.output] != [o.name for o in other.output] \
            or list(padded.opset_import) != list(unpadded.opset_import):
        return None
    alias = {name: name for name in input_names}  # a name in `unpadded` -> the same value in the merged graph
    initializers = _merge_initializers(graph, other, alias)
    own = lambda name: alias.get(name, name if not name else PREFIX + name)  # noqa: E731
    padded_nodes = {_node_key(node, list(node.input)): position for position, node in enumerate(graph.node)}
    main_values = set(alias.values())  # what the main graph holds: inputs, initializers, shared nodes' outputs
    kept_apart = _convolution_inputs(other)
    shared, unpadded_only = set(), []
    for position, node in enumerate(other.node):
        inputs = [own(name) for name in node.input]
        match = padded_nodes.get(_node_key(node, inputs))
        if match is not None and position not in kept_apart \
                and all(name in main_values or not name for name in inputs):
            shared.add(match)
            alias.update(zip(node.output, graph.node[match].output))
            main_values.update(graph.node[match].output)
            continue
        unpadded_only.append(_renamed(node, own, PREFIX + node.name if node.name else ""))
    return _assemble(padded, initializers, shared, unpadded_only, own)


def _assemble(padded: onnx.ModelProto, initializers: list, shared: set[int], unpadded_only: list,
              own: Callable[[str], str]) -> onnx.ModelProto:
    """The merged model: `padded`'s nodes at positions `shared` in the main graph, then the `If` choosing
    between `unpadded_only` (values named by `own`) and the rest of `padded`."""
    graph = padded.graph
    outputs = list(graph.output)
    padded_only, main = [], [node for position, node in enumerate(graph.node) if position in shared]
    renamed = {o.name: "padded/" + o.name for o in outputs}
    for position, node in enumerate(graph.node):
        if position not in shared:
            padded_only.append(_renamed(node, lambda name: renamed.get(name, name)))
    then_branch = _branch("unpadded", unpadded_only, outputs, {o.name: own(o.name) for o in outputs})
    else_branch = _branch("padded", padded_only, outputs, renamed)
    by_name = {tensor.name: tensor for tensor in initializers}
    for branch in (then_branch, else_branch):
        branch.initializer.extend(_read_by(branch.node, by_name))
    choose = [
        helper.make_node("Cast", [ATTENTION_MASK], [PREFIX + "mask"], name=PREFIX + "Cast", to=TensorProto.FLOAT),
        helper.make_node("ReduceMin", [PREFIX + "mask"], [PREFIX + "min"], name=PREFIX + "ReduceMin", keepdims=0),
        helper.make_node("Cast", [PREFIX + "min"], [PREFIX + "none_padded"], name=PREFIX + "all", to=TensorProto.BOOL),
        helper.make_node("If", [PREFIX + "none_padded"], [o.name for o in outputs], name=IF_NODE,
                         then_branch=then_branch, else_branch=else_branch),
    ]
    merged_graph = helper.make_graph(main + choose, graph.name, list(graph.input), outputs,
                                     _read_by(main, by_name))
    merged = helper.make_model(merged_graph, opset_imports=list(padded.opset_import), ir_version=padded.ir_version,
                               producer_name=padded.producer_name, producer_version=padded.producer_version)
    merged.metadata_props.extend(padded.metadata_props)
    return merged


def _read_by(nodes: list, initializers: dict[str, TensorProto]) -> list[TensorProto]:
    """The initializers `nodes` read. Each branch holds its own copies of its weights: onnxruntime's NCHWc
    convolutions only take weights stored in their own graph (read from the main graph, the unpadded CNN ran
    FusedConv with reorders, slower than the original; measured 2026-12-02), hence a model's weights twice."""
    read = {name for node in nodes for name in node.input}
    return [initializers[name] for name in sorted(read & initializers.keys())]


def _if_node(model: onnx.ModelProto) -> Optional[onnx.NodeProto]:
    return next((node for node in model.graph.node if node.name == IF_NODE), None)


def has_unpadded_branch(onnx_path: str | Path) -> bool:
    return _if_node(onnx.load(str(onnx_path), load_external_data=False)) is not None


def split_branches(model: onnx.ModelProto) -> Optional[tuple[onnx.ModelProto, onnx.ModelProto]]:
    """(padded, unpadded) plain models from a merged one; None if `model` has no unpadded branch."""
    if_node = _if_node(model)
    if if_node is None:
        return None
    main = [node for node in model.graph.node if not node.name.startswith(PREFIX)]
    branches = {a.name: a.g for a in if_node.attribute}
    return tuple(_standalone(model, main, branches[name]) for name in ("else_branch", "then_branch"))


def _standalone(model: onnx.ModelProto, main: list, branch: onnx.GraphProto) -> onnx.ModelProto:
    """The main graph's shared nodes plus one branch, its outputs under the model's output names again."""
    outputs = list(model.graph.output)
    rename = {inner.name: outer.name for inner, outer in zip(branch.output, outputs)}
    nodes = [_renamed(node, lambda name: rename.get(name, name)) for node in main + list(branch.node)]
    initializers = _read_by(nodes, {t.name: t for t in list(model.graph.initializer) + list(branch.initializer)})
    graph = helper.make_graph(nodes, model.graph.name, list(model.graph.input), outputs, initializers)
    standalone = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version,
                                   producer_name=model.producer_name, producer_version=model.producer_version)
    standalone.metadata_props.extend(model.metadata_props)
    return standalone


def add_unpadded_branch(onnx_path: str | Path, unpadded_path: str | Path) -> bool:
    """Rewrite `onnx_path` in place with the graph of `unpadded_path` as its branch for unpadded batches; False
    (file untouched, a warning) when they cannot be merged or the merged outputs differ from the original's on a
    batch with padding or on one without (`rewrite.replace_if_same_outputs`)."""
    onnx_path = Path(onnx_path)
    merged = merge_branches(onnx.load(str(onnx_path)), onnx.load(str(unpadded_path)))
    if merged is None:
        logger.warning("%s: no unpadded branch added (the graphs' inputs or outputs differ)", onnx_path)
        return False
    return replace_if_same_outputs(onnx_path, merged, ".branches.onnx", "the unpadded branch", MAX_RELATIVE_DIFF)


def _plain_copies(onnx_path: Path, scratch: Path, graphs) -> list[Path]:
    """Each graph saved as `onnx_path`'s name in its own folder under `scratch`, with copies of the JSON files
    beside `onnx_path` (config.json, preprocessor_config.json: what the quantizers read)."""
    paths = []
    for name, model in zip(("padded", "unpadded"), graphs):
        folder = scratch / name
        folder.mkdir()
        for extra in onnx_path.parent.glob("*.json"):
            shutil.copy(extra, folder)
        onnx.save(model, str(folder / onnx_path.name))
        paths.append(folder / onnx_path.name)
    return paths


def padded_graph(onnx_path: str | Path, scratch: str | Path) -> Path:
    """The graph for padded batches (which serves any batch) of a merged file, as a plain file in `scratch`."""
    onnx_path = Path(onnx_path)
    return _plain_copies(onnx_path, Path(scratch), split_branches(onnx.load(str(onnx_path)))[:1])[0]


def per_branch(onnx_path: str | Path, output_path: str | Path, transform: Callable[[Path], Path]) -> Path:
    """Apply `transform` (a plain ONNX file, in a folder with copies of the JSON files beside `onnx_path` -> the
    file it wrote beside it) to each graph of a merged file, and merge the two results into `output_path`, the
    JSON files written beside the padded graph's result copied along (e.g. optimum's ort_config.json)."""
    onnx_path, output_path = Path(onnx_path), Path(output_path)
    with tempfile.TemporaryDirectory() as scratch:
        results = [transform(path) for path in _plain_copies(onnx_path, Path(scratch),
                                                             split_branches(onnx.load(str(onnx_path))))]
        output_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(results[0], output_path)
        for extra in results[0].parent.glob("*.json"):
            if not (output_path.parent / extra.name).exists():
                shutil.copy(extra, output_path.parent)
        add_unpadded_branch(output_path, results[1])
    return output_path
