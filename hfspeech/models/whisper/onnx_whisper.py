"""ONNX export of a cut Whisper classifier: optimum's own `WhisperOnnxConfig` (audio-classification), traced
with dummy log-mel inputs of the model's window instead of its default 3,000 frames (30 s), which the cut
encoder would refuse."""

from hfspeech.models.whisper.modeling_whisper import is_whisper


def onnx_input_shapes(config) -> dict | None:
    """optimum `input_shapes` for `export` / `validate_model_outputs`; None for other models (their defaults)."""
    if not is_whisper(config):
        return None
    return {"nb_max_frames": 2 * config.max_source_positions}


def _register_whisper_classifiers() -> None:
    """`WhisperForLabelScoring` exports with optimum's Whisper audio-classification config: the same input (the
    log-mel window) and output (one logit per label); the decoder and its fixed token sequences are in the graph.
    `WhisperClipPoolingForAudioClassification` takes the per-mel-frame attention mask too."""
    from optimum.exporters.onnx.model_configs import WhisperOnnxConfig
    from optimum.exporters.tasks import TasksManager

    from hfspeech.models.onnx_baseline import PaddedWaveformInputGenerator
    from hfspeech.models.whisper.configuration_clip_pooling import MODEL_TYPE as CLIP_POOLING
    from hfspeech.models.whisper.configuration_label_scoring import MODEL_TYPE as LABEL_SCORING

    @TasksManager.create_register("onnx")(LABEL_SCORING, "audio-classification")
    class WhisperLabelScoringOnnxConfig(WhisperOnnxConfig):
        pass

    class PaddedMelFramesInputGenerator(PaddedWaveformInputGenerator):
        """Log-mel inputs plus a per-mel-frame mask that ends the batch's last clip at two thirds of the window."""

        SUPPORTED_INPUT_NAMES = ("input_features", "attention_mask")
        MASK_LENGTH = "nb_max_frames"

    @TasksManager.create_register("onnx")(CLIP_POOLING, "audio-classification")
    class WhisperClipPoolingOnnxConfig(WhisperOnnxConfig):
        DUMMY_INPUT_GENERATOR_CLASSES = (PaddedMelFramesInputGenerator,)

        @property
        def inputs(self) -> dict[str, dict[int, str]]:
            return {"input_features": {0: "batch_size"}, "attention_mask": {0: "batch_size"}}


_register_whisper_classifiers()
