"""TorchScript export: `export_torchscript(model_dir)` -> `model.torchscript.pt` beside config.json (labels,
clip window), preprocessor_config.json (sampling rate, padding, normalisation) and traced_from.json (the sha256
of the config and weights it was traced from).

The file runs with `torch.jit.load` alone, feature front end included for the baselines, and
`AudioClassifier.from_pretrained` runs it like the original model. It is traced, not scripted: tracing
works for any transformers model, but it records one run, and a model that turns a tensor shape into a
Python number would replay the traced length forever. So the export checks the traced module against
PyTorch on a batch of other lengths and sizes before saving it.

`write_run_twin(run_dir)`, called when `hfspeech train` / `distill` finish, exports a baseline's run to its
default export folder, `RUN/torchscript`. `hfspeech predict RUN` then runs that file while it is current
(`hfspeech.inference.backends.locate_model`): torch without transformers, whose `PreTrainedModel` import is
most of a cold start with the PyTorch model (about 5 s against 2 s, docs/inference.md).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from hfspeech.data.audio import seconds_to_samples
from hfspeech.export.loading import ExportError, load_model, read_config
from hfspeech.export.staging import default_output_dir, staged_export
from hfspeech.export.weight_norm import remove_weight_norm
from hfspeech.export.trace_notes import whisper_trace_notes_hidden
from hfspeech.models import in_fast_layout, is_baseline
from hfspeech.models.fingerprint import write_traced_from
from hfspeech.models.inputs import extract_features

logger = logging.getLogger(__name__)

TORCHSCRIPT_FILE = "model.torchscript.pt"
MAX_ABS_DIFF = 1e-4


class LogitsOnly(nn.Module):
    """Positional tensors in, logits out: what `torch.jit.trace` needs (no dict output, no None inputs).
    The tensors are the feature extractor's outputs, in the order it returns them."""

    def __init__(self, model, input_names: list[str]):
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.input_names, inputs)), return_dict=False)[0]


def example_batch(feature_extractor, lengths: list[int], seed: int) -> dict[str, torch.Tensor]:
    """Padded noise clips of the given lengths, as the feature extractor prepares them: the traced module
    then takes exactly what the extractor gives it at inference (with or without an attention mask)."""
    rng = np.random.default_rng(seed)
    clips = [rng.standard_normal(n).astype(np.float32) for n in lengths]
    return dict(extract_features(feature_extractor, clips))


@contextlib.contextmanager
def untraceable_refused(model_dir: Path, model: nn.Module):
    """One line where TorchScript cannot hold the model: SEW-D's attention calls DeBERTa's `XSoftmax`, a Python
    autograd function the trace records but cannot save ("Could not export Python function call"), which ended the
    export in a traceback. Such a model exports to ONNX (its graph records the function's own export)."""
    try:
        yield
    except RuntimeError as error:
        if "Could not export Python function" not in str(error):
            raise
        function = str(error).split("call '", 1)[-1].split("'", 1)[0]
        model_type = getattr(model.config, "model_type", type(model).__name__)
        raise ExportError(f"{model_dir}: model_type {model_type!r} cannot be traced to TorchScript (it calls the "
                          f"Python function {function!r}); export it with --format onnx") from None


def export_torchscript(model_dir: str | Path, output_dir: Optional[str | Path] = None) -> Path:
    """Trace a saved audio classifier to `OUTPUT_DIR/model.torchscript.pt` (default `MODEL_DIR/torchscript`),
    check it on unseen lengths, and save config.json and preprocessor_config.json beside it."""
    model_dir = Path(model_dir)
    output_dir = Path(output_dir) if output_dir else default_output_dir(model_dir, "torchscript")
    model, feature_extractor = load_model(model_dir, read_config(model_dir))
    remove_weight_norm(model)
    # The layout `TorchBackend` runs the model in: a trace keeps the layout it saw, and the CNN's convolutions and
    # pooling in the default layout made the file 1.3-1.7x slower than PyTorch.
    model = in_fast_layout(model)
    window = seconds_to_samples(getattr(model.config, "max_length_seconds", None) or 1.0, feature_extractor.sampling_rate)
    example = example_batch(feature_extractor, [window, 2 * window // 3], seed=0)
    wrapper = LogitsOnly(model, list(example)).eval()
    with torch.no_grad(), whisper_trace_notes_hidden():  # torch's notes on shapes a Whisper export fixes
        # check_trace=False: torch's check re-traced and re-ran the model on the same batch (0.5-0.7 s of a
        # baseline's 1.4-1.7 s export, which every `hfspeech train` makes); the check below runs other lengths
        traced = torch.jit.trace(wrapper, tuple(example.values()), check_trace=False)
        check = tuple(example_batch(feature_extractor, [window * 3 // 2, window // 2, window // 3], seed=1).values())
        difference = float((traced(*check) - wrapper(*check)).abs().max())
    if not difference <= MAX_ABS_DIFF:
        raise ExportError(f"{model_dir}: the traced model does not follow other clip lengths (logits differ by "
                          f"{difference:.2g}); export it to ONNX instead")
    buffer = io.BytesIO()  # torch's own file writer aborts the process on a full disk; Python's write raises
    with untraceable_refused(model_dir, model):
        torch.jit.save(traced, buffer)
    with staged_export(output_dir) as staging:
        (staging / TORCHSCRIPT_FILE).write_bytes(buffer.getbuffer())
        model.config.save_pretrained(staging)
        feature_extractor.save_pretrained(staging)
        write_traced_from(model_dir, staging)
    path = output_dir / TORCHSCRIPT_FILE
    logger.info("traced %s to %s", model_dir, path)
    return path


def write_run_twin(run_dir: str | Path) -> Optional[Path]:
    """Trace a finished baseline run (CNN, LSTM, BC-ResNet) to `RUN/torchscript`, for a fast start of
    `hfspeech predict RUN`; other models are left alone (their files are large, and Whisper's and AST's
    extractors import transformers anyway). A model that cannot be traced is logged, not raised: the run
    itself is complete and still runs in PyTorch."""
    run_dir = Path(run_dir)
    try:
        model_type = json.loads((run_dir / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError):
        return None
    if not is_baseline(model_type):
        return None
    try:
        path = export_torchscript(run_dir, default_output_dir(run_dir, "torchscript"))
    except Exception as error:  # tracing errors come from deep inside torch.jit; the run is saved already
        logger.warning("%s: not traced to TorchScript (%s: %s); `hfspeech predict` runs it in PyTorch",
                       run_dir, type(error).__name__, error)
        return None
    logger.info("%s: traced to %s; `hfspeech predict` starts with it, without transformers", run_dir, path)
    return path
