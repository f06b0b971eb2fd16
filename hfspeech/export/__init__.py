"""Deployment exports: ONNX (through optimum, optionally int8) and TorchScript, each written beside the
config.json and preprocessor_config.json that `AudioClassifier.from_pretrained` needs to run it.

The names below are imported when first used (a module `__getattr__`, as transformers' own package does), not
with the package: `hfspeech.export.staging` (which `predict` reads) or the TorchScript copy `train` writes then
need no optimum or onnxruntime, whose import also puts `site-packages/onnxruntime/transformers` on `sys.path`
(a notebook's own `import metrics` then found onnxruntime's). `onnx_export` registers the baselines' ONNX configs
with optimum's `TasksManager` (`hfspeech/models/*/onnx_*.py`) before any export. Nor does `import hfspeech` need
optimum.
"""

from __future__ import annotations

import importlib

# public name -> the module of this package that defines it
_EXPORTS = {"ExportError": "loading", "export_onnx": "onnx_export", "export_torchscript": "torchscript_export",
            "quantize_int8": "quantization"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
