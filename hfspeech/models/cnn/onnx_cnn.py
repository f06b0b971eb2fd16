"""ONNX export configuration of the CNN baseline, registered with optimum's ``TasksManager`` on import.

``hfspeech.export.onnx_export`` imports this module, so the registration is in place before any export.
"""

from optimum.exporters.tasks import TasksManager

from hfspeech.models.onnx_baseline import BaselineOnnxConfig

register = TasksManager.create_register("onnx")


@register("hfspeech-cnn", "feature-extraction", "audio-classification")
class CNNAudioOnnxConfig(BaselineOnnxConfig):
    """Waveforms and attention mask in; the log-mel front end is part of the exported graph."""
