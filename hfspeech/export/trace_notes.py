"""Library notes printed while a Whisper classifier is traced for export that say nothing true about its export.

Tracing a cut Whisper (ONNX or TorchScript) printed four lines of torch's `TracerWarning` ("Converting a tensor to
a Python boolean might cause the trace to be incorrect ... might not generalize to other inputs!") from two checks
in transformers: the encoder's `input_features.shape[-1] != expected_seq_length`, and sdpa's `is_causal =
query.shape[2] > 1 and ...`. Both shapes are fixed in the export: optimum's `WhisperOnnxConfig` makes only the batch
axis dynamic for audio-classification, so onnxruntime refuses any other length itself, and the encoder's attention is
not causal whatever the length. A TorchScript export also logged "`loss_type=None` was set in the config but it is
unrecognized. Using the default loss: `ForCausalLMLoss`": `torch.jit.trace` reads every submodule's
`loss_function` property (the encoder's class name matches no loss), a loss the trace never runs.

Only these, by exact message and the module that warns: a TracerWarning from the model's own code (hfspeech's
baselines, another transformers model's modeling file) may be a trace that does not generalize, and stays. sdpa's
note is hidden for every model that attends through it (wav2vec2, HuBERT, WavLM too: review R3): their encoders
pass `is_causal` False or a fixed mask, so it holds at any length.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Iterator

TRACE_NOTE = "Converting a tensor to a Python boolean might cause the trace to be incorrect"
FIXED_SHAPE_CHECKS = r"transformers\.(models\.whisper\.modeling_whisper|integrations\.sdpa_attention)$"
UNUSED_LOSS_NOTE = "`loss_type=None` was set in the config but it is unrecognized"


def _not_the_unused_loss_note(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(UNUSED_LOSS_NOTE)


@contextlib.contextmanager
def whisper_trace_notes_hidden() -> Iterator[None]:
    """The block without the notes above (warnings filters and the logger filter put back after it, an error
    included); every other warning and log line shows as before."""
    from torch.jit import TracerWarning

    modeling_logger = logging.getLogger("transformers.modeling_utils")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=TRACE_NOTE, category=TracerWarning, module=FIXED_SHAPE_CHECKS)
        modeling_logger.addFilter(_not_the_unused_loss_note)
        try:
            yield
        finally:
            modeling_logger.removeFilter(_not_the_unused_loss_note)
