"""ONNX export configuration of BC-ResNet, registered with optimum's ``TasksManager`` on import.

``hfspeech.export.onnx_export`` imports this module, so the registration is in place before any export.
"""

from optimum.exporters.tasks import TasksManager

from hfspeech.models.onnx_baseline import BaselineOnnxConfig

register = TasksManager.create_register("onnx")


@register("hfspeech-bcresnet", "feature-extraction", "audio-classification")
class BCResNetAudioOnnxConfig(BaselineOnnxConfig):
    """Waveforms and attention mask in; the log-mel front end is part of the exported graph."""
