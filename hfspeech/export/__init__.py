"""Deployment exports: ONNX (through optimum, optionally int8) and TorchScript, each written beside the
config.json and preprocessor_config.json that `AudioClassifier.from_pretrained` needs to run it.

Importing this package registers the baselines' ONNX configs with optimum's `TasksManager`
(`hfspeech/models/{cnn,lstm}/onnx_*.py`), which must happen before any export. It is imported here and
not from `hfspeech/__init__.py`, so that `import hfspeech` does not need optimum.
"""

from hfspeech.models.cnn import onnx_cnn  # noqa: F401  (registers "hfspeech-cnn" with optimum)
from hfspeech.models.lstm import onnx_lstm  # noqa: F401  (registers "hfspeech-lstm" with optimum)
from hfspeech.models.bcresnet import onnx_bcresnet  # noqa: F401  (registers "hfspeech-bcresnet" with optimum)
from hfspeech.models.whisper import onnx_whisper  # noqa: F401  (registers "whisper-label-scoring" with optimum)

from hfspeech.export.loading import ExportError
from hfspeech.export.onnx_export import export_onnx
from hfspeech.export.quantization import quantize_int8
from hfspeech.export.torchscript_export import export_torchscript

__all__ = ["ExportError", "export_onnx", "export_torchscript", "quantize_int8"]
