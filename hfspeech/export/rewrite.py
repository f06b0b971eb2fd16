"""Rewriting an exported ONNX file in place, only when the rewrite leaves its outputs as they were.

`compact` (the DFT basis computed in the graph), `slim` (sparse constants, folded norms), `short_names` (short
tensor names in int8 files) and `unpadded_branch` (a second graph for unpadded batches) all save the rewritten
model beside the original, run both on a batch of two full clips and on the same batch with one clip cut short
by the attention mask, and replace the original only if the outputs agree on both.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx

logger = logging.getLogger(__name__)


def tensor_readers(graph: onnx.GraphProto) -> dict[str, list[tuple[str, int]]]:
    """Who reads each tensor: `(op_type, input position)` of every node input naming it."""
    readers: dict[str, list[tuple[str, int]]] = {}
    for node in graph.node:
        for position, name in enumerate(node.input):
            readers.setdefault(name, []).append((node.op_type, position))
    return readers


def replace_if_same_outputs(onnx_path: Path, model: onnx.ModelProto, suffix: str, what: str,
                            relative_tolerance: float = 0.0) -> bool:
    """Save `model` as `onnx_path` with `suffix`, and move it over `onnx_path` when its outputs are within
    `relative_tolerance` (of the largest output, at least 1) of the original's; else delete it, warn, False."""
    rewritten = onnx_path.with_suffix(suffix)
    onnx.save(model, str(rewritten))
    if not same_outputs(onnx_path, rewritten, relative_tolerance):
        rewritten.unlink()
        logger.warning("%s: %s changed the outputs; the file is kept as it was", onnx_path, what)
        return False
    rewritten.replace(onnx_path)
    return True


def same_outputs(original: Path, rewritten: Path, relative_tolerance: float = 0.0) -> bool:
    """Whether both files give the same outputs (within `relative_tolerance` of the largest, at least 1) on a
    batch of two full clips and on the same batch with the second clip cut short by the attention mask."""
    import onnxruntime

    from hfspeech.cpu_threads import onnx_session_options  # the CPUs this process may use, not the host's cores

    sessions = [onnxruntime.InferenceSession(str(p), onnx_session_options(), providers=["CPUExecutionProvider"])
                for p in (original, rewritten)]
    waveforms = np.random.default_rng(0).standard_normal((2, 16000)).astype(np.float32)
    for cut in (16000, 9000):
        mask = np.ones((2, 16000), np.int64)
        mask[1, cut:] = 0
        feed = {node.name: waveforms if node.type == "tensor(float)" else mask for node in sessions[0].get_inputs()}
        outputs = [session.run(None, feed) for session in sessions]
        if not all(np.abs(a - b).max() <= relative_tolerance * max(1.0, np.abs(a).max()) for a, b in zip(*outputs)):
            return False
    return True
