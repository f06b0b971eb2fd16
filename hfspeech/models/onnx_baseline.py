"""ONNX export configurations for optimum: waveform and attention mask in, dynamic batch and length.

Shared by the baselines' ``onnx_cnn.py`` / ``onnx_lstm.py`` and by ``hfspeech.export`` for
Wav2Vec2-style models whose feature extractor returns an attention mask. Only ``hfspeech.export``
imports these modules, so ``import hfspeech`` does not need optimum.
"""

import numpy as np
from optimum.exporters.onnx.config import AudioOnnxConfig
from optimum.utils import DummyAudioInputGenerator, NormalizedConfig


class PaddedWaveformInputGenerator(DummyAudioInputGenerator):
    """Dummy waveforms plus an attention mask that pads the batch's last clip to two thirds of its length.

    With real padding in the example batch, the trace and optimum's output validation both go
    through the masking code, not just through an all-ones mask. A subclass for another input sets
    `MASK_LENGTH` to the generator attribute the mask spans (Whisper's: `nb_max_frames`, one per mel frame).
    """

    SUPPORTED_INPUT_NAMES = ("input_values", "attention_mask")
    MASK_LENGTH = "sequence_length"

    def generate(self, input_name: str, framework: str = "pt", int_dtype: str = "int64", float_dtype: str = "fp32"):
        if input_name != "attention_mask":
            return super().generate(input_name, framework, int_dtype, float_dtype)
        length = getattr(self, self.MASK_LENGTH)
        mask = np.ones((self.batch_size, length), dtype=np.int64)
        mask[-1, 2 * length // 3 :] = 0
        if framework == "pt":
            import torch

            return torch.from_numpy(mask)
        return mask


class WaveformOnnxConfig(AudioOnnxConfig):
    """``input_values`` and ``attention_mask`` (both ``[batch_size, sequence_length]``) -> ``logits``.

    Opset 18, as the exports have always been written (the front end's DFT is a plain ``MatMul`` now).
    The validation tolerance is the one the tests hold exports to.
    """

    NORMALIZED_CONFIG_CLASS = NormalizedConfig
    DUMMY_INPUT_GENERATOR_CLASSES = (PaddedWaveformInputGenerator,)
    DEFAULT_ONNX_OPSET = 18
    ATOL_FOR_VALIDATION = 1e-4

    @property
    def inputs(self) -> dict[str, dict[int, str]]:
        return {
            "input_values": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: "sequence_length"},
        }


class BaselineOnnxConfig(WaveformOnnxConfig):
    """A baseline's config; for ``feature-extraction`` the base model's frame-level states and frame mask
    come out, with a time axis of frames (``frames``), not samples."""

    @property
    def outputs(self) -> dict[str, dict[int, str]]:
        if self.task == "feature-extraction":
            return {"last_hidden_state": {0: "batch_size", 1: "frames"}, "frame_mask": {0: "batch_size", 1: "frames"}}
        return super().outputs
