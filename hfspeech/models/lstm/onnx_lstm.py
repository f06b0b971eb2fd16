"""ONNX export configuration of the LSTM baseline, registered with optimum's ``TasksManager`` on import.

``hfspeech.export.onnx_export`` imports this module, so the registration is in place before any export.
"""

from optimum.exporters.tasks import TasksManager

from hfspeech.models.onnx_baseline import BaselineOnnxConfig

register = TasksManager.create_register("onnx")


@register("hfspeech-lstm", "feature-extraction", "audio-classification")
class LSTMAudioOnnxConfig(BaselineOnnxConfig):
    """Waveforms and attention mask in; the MFCC front end and the length-aware BiLSTM are part of the graph."""
