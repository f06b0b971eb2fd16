"""ONNX export of a cut Whisper classifier: optimum's own `WhisperOnnxConfig` (audio-classification), traced
with dummy log-mel inputs of the model's window instead of its default 3,000 frames (30 s), which the cut
encoder would refuse."""

from hfspeech.models.whisper.modeling_whisper import is_whisper


def onnx_input_shapes(config) -> dict | None:
    """optimum `input_shapes` for `export` / `validate_model_outputs`; None for other models (their defaults)."""
    if not is_whisper(config):
        return None
    return {"nb_max_frames": 2 * config.max_source_positions}


def _register_label_scoring() -> None:
    """`WhisperForLabelScoring` exports with optimum's Whisper audio-classification config: the same input (the
    log-mel window) and output (one logit per label); the decoder and its fixed token sequences are in the graph."""
    from optimum.exporters.onnx.model_configs import WhisperOnnxConfig
    from optimum.exporters.tasks import TasksManager

    from hfspeech.models.whisper.configuration_label_scoring import MODEL_TYPE

    @TasksManager.create_register("onnx")(MODEL_TYPE, "audio-classification")
    class WhisperLabelScoringOnnxConfig(WhisperOnnxConfig):
        pass


_register_label_scoring()
