"""Weight norm baked into plain weights before an export (ONNX and TorchScript alike), in a module of its own so that
the TorchScript copy `hfspeech train` writes needs no optimum or onnxruntime (`onnx_export` imports both)."""

from __future__ import annotations

from torch.nn.utils import parametrize


def remove_weight_norm(model) -> None:
    """Bake weight-normed weights (Wav2Vec2's positional conv) into plain tensors, so they become ONNX
    initializers: ORT's quantizer stops on a weight computed in the graph ("Expected ... to be an
    initializer"), and the graph no longer recomputes it on every call."""
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
