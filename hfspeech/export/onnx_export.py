"""ONNX export through optimum's exporter: `export_onnx(model_dir)` -> `model.onnx` beside config.json and
preprocessor_config.json, so `AudioClassifier.from_pretrained` runs it in onnxruntime like the original.

Why `optimum.exporters.onnx.export` and not `main_export`/`onnx_export_from_model`: those two infer the
model's library from the module its class lives in, and refuse a class outside `transformers`
("The library name could not be automatically inferred"), which is every hfspeech baseline. `export`
is the function they call underneath, with the same ONNX configs looked up from the same `TasksManager`
registry (where `onnx_cnn.py` / `onnx_lstm.py` register the baselines), and `validate_model_outputs`
is the same output check.
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Optional

from optimum.exporters.onnx import export, validate_model_outputs
from optimum.exporters.tasks import TasksManager

from hfspeech.cpu_threads import onnx_sessions_capped
from hfspeech.export.compact import compact_dft_basis
from hfspeech.export.loading import ExportError, load_model, read_config
from hfspeech.export.quantization import quantize_int8, write_int8_weights
from hfspeech.export.slim import slim_onnx
from hfspeech.export.staging import default_output_dir, staged_export
from hfspeech.export.weight_norm import remove_weight_norm
from hfspeech.output_folders import named_at
from hfspeech.export.unpadded_branch import add_unpadded_branch
from hfspeech.export.trace_notes import whisper_trace_notes_hidden
from hfspeech.features.frontend import AudioFrontend
from hfspeech.models.fingerprint import write_traced_from
from hfspeech.models.padding import PaddingMasks
from hfspeech.models.onnx_baseline import WaveformOnnxConfig
from hfspeech.models.whisper.onnx_whisper import onnx_input_shapes  # registers "whisper-label-scoring" with optimum
from hfspeech.models.bcresnet import onnx_bcresnet  # noqa: F401  (registers "hfspeech-bcresnet" with optimum)
from hfspeech.models.cnn import onnx_cnn  # noqa: F401  (registers "hfspeech-cnn" with optimum)
from hfspeech.models.lstm import onnx_lstm  # noqa: F401  (registers "hfspeech-lstm" with optimum)
from hfspeech.written_elsewhere import temporary_writes

logger = logging.getLogger(__name__)

TASK = "audio-classification"
ONNX_FILE = "model.onnx"
QUANTIZE_CHOICES = (None, "int8", "int8_weights")
# A full disk during an export: nothing of it was moved in (`export.staging`), an earlier export is left whole.


def check_exportable(model_type: str, model_dir: Path) -> None:
    """Checked from config.json alone, before the weights load: a clear error, and a fast one."""
    supported = TasksManager.get_supported_model_type_for_task(TASK, exporter="onnx")
    if model_type not in supported:
        raise ExportError(f"{model_dir}: optimum cannot export model_type {model_type!r} to ONNX for {TASK} "
                          f"(it can: {', '.join(sorted(supported))})")


def onnx_config_for(model, feature_extractor):
    """optimum's registered ONNX config for the model type, with an attention mask input when the feature
    extractor returns one.

    optimum's own configs for the Wav2Vec2 family take `input_values` only. Models whose extractor returns
    an attention mask (layer-norm feature encoders, e.g. wav2vec2-large, XLS-R) need it in the graph, or a
    padded batch gives other logits than in PyTorch; those get `WaveformOnnxConfig`, which adds it.
    """
    constructor = TasksManager.get_exporter_config_constructor("onnx", model=model, task=TASK,
                                                               library_name="transformers")
    onnx_config = constructor(model.config)
    if getattr(feature_extractor, "return_attention_mask", False) and "attention_mask" not in onnx_config.inputs:
        onnx_config = WaveformOnnxConfig(model.config, task=TASK)
    return onnx_config


def shrink_baseline_graph(model, onnx_path: Path) -> None:
    """A baseline's in-model front end: its DFT basis computed in the graph, sparse constants, folded norms."""
    frontend = next((module for module in model.modules() if isinstance(module, AudioFrontend)), None)
    if frontend is not None:
        compact_dft_basis(onnx_path, frontend)
        slim_onnx(onnx_path)


def add_graph_for_unpadded_batches(model, onnx_config, onnx_path: Path, input_shapes: Optional[dict]) -> None:
    """For models that zero padded frames and ask for it (`PaddingMasks.onnx_unpadded_branch`): trace them again
    without the zeroing and store that graph beside the first, for batches with no padding
    (`hfspeech.export.unpadded_branch`)."""
    encoders = [module for module in model.modules() if isinstance(module, PaddingMasks)]
    if not any(encoder.onnx_unpadded_branch for encoder in encoders):
        return
    with tempfile.TemporaryDirectory() as scratch:
        unpadded_path = Path(scratch) / ONNX_FILE
        for encoder in encoders:
            encoder.skip_padding_masks = True
        try:
            with temporary_writes():
                export(model, onnx_config, unpadded_path, opset=onnx_config.DEFAULT_ONNX_OPSET,
                       input_shapes=input_shapes)
                shrink_baseline_graph(model, unpadded_path)
        finally:
            for encoder in encoders:
                encoder.skip_padding_masks = False
        add_unpadded_branch(onnx_path, unpadded_path)


def export_onnx(model_dir: str | Path, output_dir: Optional[str | Path] = None, quantize: Optional[str] = None,
                calibration_dir: Optional[str | Path] = None,
                check_int8: Optional[Callable[[Path], object]] = None, skip_bad_files: bool = False) -> Path:
    """Export a saved audio classifier to `OUTPUT_DIR/model.onnx` (dynamic batch and length), check its
    logits against PyTorch, and save config.json and preprocessor_config.json beside it.

    `quantize="int8"` also writes `model_quantized.onnx` (see `quantize_int8`; static when
    `calibration_dir` is given); `quantize="int8_weights"` writes it with int8 convolution weights and float
    compute (`write_int8_weights`); `skip_bad_files`: calibration passes over files it cannot decode. Returns
    the path of the last ONNX file written. The files of an earlier export in `output_dir` are replaced only once
    all of these are written (`hfspeech.export.staging`).

    `check_int8(int8_file)` (the accuracy gate, `inference.agreement.gate_int8`) runs on the int8 file before it
    is moved in: run after, a gate stopped half-way (Ctrl-C, a cancelled job) left an unchecked int8 file beside
    the export, with no record saying so. When the check raises an `Exception` (it failed, or could not measure),
    the int8 file is not kept, the rest of the export is moved in all the same and the error raised after it.
    """
    if quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"quantize must be one of {QUANTIZE_CHOICES}, got {quantize!r}")
    model_dir = Path(model_dir)
    output_dir = Path(output_dir) if output_dir else default_output_dir(model_dir, "onnx")
    config = read_config(model_dir)
    check_exportable(config.model_type, model_dir)
    model, feature_extractor = load_model(model_dir, config)
    remove_weight_norm(model)
    onnx_config = onnx_config_for(model, feature_extractor)

    with staged_export(output_dir) as staging, warnings.catch_warnings(), onnx_sessions_capped(), \
            whisper_trace_notes_hidden():  # onnx_sessions_capped: optimum's sessions too
        # torch's notes on its own constant folding (a Slice it leaves alone): lines of noise on every export
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        written = write_onnx(model, onnx_config, feature_extractor, staging, quantize, calibration_dir,
                             skip_bad_files)
        write_traced_from(model_dir, staging)  # which weights: `predict` warns when its model has changed since
        refusal = checked_int8(check_int8, written, staging, output_dir) if quantize else None
    if refusal is not None:
        raise refusal
    logger.info("exported %s to %s", model_dir, output_dir / written.name)
    return output_dir / written.name


def checked_int8(check_int8: Optional[Callable[[Path], object]], int8_file: Path, staging: Path,
                 output_dir: Path) -> Optional[Exception]:
    """The error of `check_int8` run on the staged `int8_file`, naming files where they are moved to, or None when
    it passed. Ctrl-C (not an `Exception`) goes through, so that nothing of the export is moved in."""
    if check_int8 is None:
        return None
    try:
        check_int8(int8_file)
    except Exception as error:  # the gate's refusal deleted the file; any other error left it unmeasured: not kept
        int8_file.unlink(missing_ok=True)
        (int8_file.parent / "ort_config.json").unlink(missing_ok=True)  # optimum's record of the deleted file
        return named_at(error, staging, output_dir)
    return None


def write_onnx(model, onnx_config, feature_extractor, output_dir: Path, quantize: Optional[str],
               calibration_dir: Optional[str | Path], skip_bad_files: bool = False) -> Path:
    """`export_onnx`'s files, written into `output_dir` (its scratch folder); the last ONNX file written."""
    onnx_path = output_dir / ONNX_FILE
    shapes = onnx_input_shapes(model.config)
    _, output_names = export(model, onnx_config, onnx_path, opset=onnx_config.DEFAULT_ONNX_OPSET, input_shapes=shapes)
    validate_model_outputs(onnx_config, model, onnx_path, output_names, atol=onnx_config.ATOL_FOR_VALIDATION,
                           input_shapes=shapes, use_subprocess=False)
    shrink_baseline_graph(model, onnx_path)
    add_graph_for_unpadded_batches(model, onnx_config, onnx_path, shapes)
    model.config.save_pretrained(output_dir)
    feature_extractor.save_pretrained(output_dir)
    facts = deployment_facts(model.config, feature_extractor)
    write_metadata(onnx_path, facts)
    if quantize == "int8":
        written = quantize_int8(onnx_path, calibration_dir=calibration_dir, skip_bad_files=skip_bad_files)
    elif quantize == "int8_weights":
        written = write_int8_weights(onnx_path)
    else:
        return onnx_path
    write_metadata(written, facts)  # the quantizers build a new model: what they copied of it is not promised
    return written


def deployment_facts(config, feature_extractor) -> dict[str, str]:
    """What a deployer needs beside the graph, as JSON text for `model.onnx`'s `metadata_props`: labels, rate, clip
    window, waveform normalisation, problem type, thresholds, trim. They live in config.json and
    preprocessor_config.json, and a `.onnx` copied alone lost them (recipes/plain_onnxruntime.py reads them when
    the JSON files are absent). Only facts the model has are written; nothing of the graph changes."""
    facts = {
        "id2label": {str(index): label for index, label in config.id2label.items()},
        "sampling_rate": getattr(feature_extractor, "sampling_rate", None),
        "max_length_seconds": getattr(config, "max_length_seconds", None),
        "do_normalize": getattr(feature_extractor, "do_normalize", None),
        "problem_type": getattr(config, "problem_type", None),
        "label_thresholds": getattr(config, "label_thresholds", None) or None,
        "trim_silence_top_db": getattr(config, "trim_silence_top_db", None),
        "model_type": config.model_type,
    }
    return {key: json.dumps(value) for key, value in facts.items() if value is not None}


def write_metadata(onnx_path: Path, facts: dict[str, str]) -> None:
    """`facts` into `onnx_path`'s `metadata_props`, replacing entries of the same keys (the file's graph and its
    external weights, if any, are left as they are)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    kept = [entry for entry in model.metadata_props if entry.key not in facts]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in facts.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(onnx_path))
