"""Open whatever `hfspeech predict` is given -- a training run, a Hub id, an ONNX or TorchScript export --
as a model (or backend) and its feature extractor, after the folder checks of `models.folder_checks`.

The ONNX and TorchScript paths read config.json as plain JSON (`models.config_json`) and use numpy's
`WaveformPreprocessor` where the extractor allows, so they never import transformers.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

from hfspeech.features.waveform import WaveformPreprocessor
from hfspeech.errors import UsageError, log_lines_hidden
from hfspeech.folder_writers import being_written
from hfspeech.inference.backends import OnnxBackend, TorchScriptBackend, available_device, locate_model
from hfspeech.models.config_json import JsonConfig
from hfspeech.models.fingerprint import TRACED_FROM, made_from
from hfspeech.models.folder_checks import NotAModelError, check_export_folder, check_model_folder
from hfspeech.models.loading import (WEIGHT_FILES, check_model_name, hub_unreachable, is_local_path,
                                     pretrained_errors)
from hfspeech.models.scores import id_ordered_labels, unnamed_labels
from hfspeech.temporary_folder import no_temporary_folder

logger = logging.getLogger(__name__)


def load_backend(name_or_path: str, backend: Optional[str] = None, trust_remote_code: bool = False,
                 untrained: str = "warn", dtype=None, device=None):
    """(model or backend, feature extractor) for `AudioClassifier`; `backend` forces the choice for a folder;
    `untrained`: "warn" or "error" for a PyTorch model with weights the checkpoint lacks (`check_trained`).
    A `device` is checked as `--device` is (`backend_for_device`): one this machine lacks is a one-line
    `UsageError` before anything loads, and a run's TorchScript twin gives way to its weights (it ran on the
    CPU, the device "ignored"); an export keeps running on the CPU, warned of by `AudioClassifier`.
    A model object (from `AutoModelForAudioClassification.from_pretrained` in a notebook) is refused naming the
    constructor that takes it: it failed in pathlib ("expected str, bytes or os.PathLike object")."""
    if untrained not in ("warn", "error"):  # another word was taken for "warn"
        raise UsageError(f"untrained must be 'warn' or 'error', got {untrained!r}")
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise UsageError(f"from_pretrained takes a model folder, file or Hub id, got {type(name_or_path).__name__}: "
                         "for a model already loaded use AudioClassifier(model, feature_extractor)")
    check_model_name(name_or_path)  # not "corrupt": a name that is not UTF-8 (or under LC_ALL=C, not ASCII)
    if device is not None:
        backend = backend_for_device(name_or_path, backend, device_name(device), "device", refuse_exports=False)
    kind, folder, model_file = locate_model(name_or_path, backend)
    if os.path.isdir(name_or_path) and being_written(name_or_path):  # retrained with --overwrite_output_dir
        logger.warning("note: %s: a training run (or an average) is writing this folder now: this is the model it "
                       "held before", name_or_path)
    if backend is not None and kind != "pytorch" and os.path.isdir(name_or_path) and Path(folder) != Path(name_or_path):
        logger.warning("note: %s: backend %s runs %s, the run's export", name_or_path, backend, model_file)
    if dtype is not None and backend is None and kind != "pytorch" and model_file.parent != Path(folder):
        kind = "pytorch"  # a run's TorchScript twin (RUN/torchscript/) is float32: the run's weights take the dtype
    if kind == "pytorch":
        return load_pytorch(folder, trust_remote_code, untrained, dtype)
    if dtype is not None:  # an export holds its own precision: fp32, or the int8 of its quantization
        raise UsageError(f"dtype={dtype}: {model_file} is an export, which runs in the precision it was exported "
                         "in; give dtype to a model folder with PyTorch weights (or backend=\"pytorch\")")
    if kind == "onnx":
        check_onnx_beside(folder, model_file)
    check_export_folder(folder, model_file)
    warn_if_outdated(folder)
    try:
        config = JsonConfig.from_pretrained(folder)
    except ValueError as error:
        raise NotAModelError(str(error)) from None
    try:
        model = OnnxBackend(model_file, config) if kind == "onnx" else TorchScriptBackend(model_file, config)
    except ModuleNotFoundError:  # onnxruntime not installed (no `export` extra): `cli.extras` names it, not "corrupt"
        raise
    except Exception as error:  # onnxruntime and torch.jit raise their own types for a damaged file
        if (scratch := no_temporary_folder(error)) is not None:  # torch's first import, not the file: not "corrupt"
            raise scratch from None
        loader = "onnxruntime" if kind == "onnx" else "torch.jit.load"
        raise NotAModelError(f"{model_file}: corrupt, {loader} cannot load it ({error})") from error
    return model, export_feature_extractor(folder, trust_remote_code)


def backend_for_device(name_or_path: str, backend: Optional[str] = None, device: Optional[str] = None,
                       flag: str = "--device", refuse_exports: bool = True) -> Optional[str]:
    """The backend that runs `name_or_path` on `device` (a `--device` value; None: wherever it runs by itself).
    A PyTorch model's device must be on this machine (a one-line `UsageError`, not torch's traceback); a run's
    TorchScript twin (CPU only) gives way to the run's own weights; an export (ONNX, TorchScript) runs on the
    CPU only, so another device is refused rather than silently ignored (`refuse_exports=False`: left to the
    Python API's warning, `AudioClassifier`)."""
    if device is None:
        return backend
    kind, folder, model_file = locate_model(name_or_path, backend)
    if kind == "pytorch":
        available_device(device, flag)
        return backend
    if device.split(":")[0] == "cpu":  # accelerate's `cpu:0` too: the twin runs there
        return backend
    if backend is None and model_file.parent != Path(folder):  # RUN/torchscript/: the run has PyTorch weights
        available_device(device, flag)
        return "pytorch"
    if not refuse_exports:
        return backend
    kind = {"onnx": "an ONNX", "torchscript": "a TorchScript"}[kind]
    raise UsageError(f"{flag} {device}: {model_file} is {kind} export, which runs on the CPU only; leave {flag} out "
                     f"(or give {flag} cpu), or give a model folder with PyTorch weights to run on {device}")


def check_onnx_beside(folder: str, model_file: Path) -> None:
    """A `.onnx` copied without its JSON files: its `metadata_props` hold labels, rate and window for a plain
    onnxruntime script, but hfspeech runs it from the files beside it (the extractor's padding and
    attention mask, the config's other settings are in them, not in the metadata), so the line says what to copy."""
    if not os.path.isfile(model_file):
        return  # `check_export_folder` names the missing file
    for name, holds in (("config.json", "labels"), ("preprocessor_config.json", "sampling rate")):
        if not os.path.isfile(os.path.join(folder, name)):
            raise NotAModelError(f"{folder}: no {name} ({holds}) beside {model_file.name}: hfspeech runs an ONNX file "
                                 "with the config.json and preprocessor_config.json `hfspeech export` writes beside "
                                 "it, not the copy in its metadata_props (recipes/plain_onnxruntime.py reads that); "
                                 "copy them with it")


def device_name(device) -> str:
    """A Python `device=` as `backend_for_device` reads it: a `torch.device` or string as written, transformers
    pipeline's numbers (an int of any kind, numpy's too, or such a string: "-1") as `cpu` (-1) or `cuda:N`."""
    import numbers

    if isinstance(device, str) and device.lstrip("-").isdigit():
        device = int(device)
    if isinstance(device, numbers.Integral) and not isinstance(device, bool):
        return "cpu" if device < 0 else f"cuda:{device}"
    return str(device)


def warn_if_outdated(export_dir: str) -> None:
    """An export in its model folder's own subfolder (`MODEL/onnx`, `MODEL/torchscript`: the defaults) is a
    snapshot: after the model is retrained or edited it still runs the old weights, and nothing said so. Its
    traced_from.json (the config and weights it was made from) tells; a warning, not an error, since running
    an older export may be meant. Cheap: files whose stat (size, mtime, ctime, inode) is as recorded are not
    read (`models.fingerprint.made_from`); Whisper-base's 290 MB were hashed on every load, 0.5-0.7 s, now 1 ms."""
    folder = Path(export_dir)
    model_dir = folder.parent
    if not (folder / TRACED_FROM).is_file() or not any((model_dir / name).is_file() for name in WEIGHT_FILES):
        return
    if not made_from(folder, model_dir):
        logger.warning("warning: %s was exported from another config or weights than %s holds now (retrained?); "
                       "it runs the old model: export it again to run the new one", folder, model_dir)


def load_pytorch(folder: str, trust_remote_code: bool = False, untrained: str = "warn", dtype=None):
    """A transformers model and feature extractor from a checked folder, or a Hub id; `dtype` (None: as saved,
    float32 for hfspeech's runs) is the model's, as transformers' `from_pretrained(..., dtype=)` gives it."""
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    from hfspeech.models import register
    from hfspeech.models.library_notes import hide_mismatched_masks_note

    register()
    hide_mismatched_masks_note()  # a WavLM's first padded batch (predict, stream, serve, evaluate)
    if is_local_path(folder):
        check_model_folder(folder, trust_remote_code)
    with pretrained_errors(folder):  # a Hub id with the Hub out of reach: its cached copy, without retries
        cache_only = not is_local_path(folder) and hub_unreachable()
        options = dict(trust_remote_code=trust_remote_code, local_files_only=cache_only)
        with log_lines_hidden("transformers.modeling_utils", "newly initialized"):  # `check_trained` says it
            model, info = AutoModelForAudioClassification.from_pretrained(
                folder, output_loading_info=True, **options, **({} if dtype is None else {"dtype": dtype}))
        feature_extractor = AutoFeatureExtractor.from_pretrained(folder, **options)
    check_trained(folder, info["missing_keys"], model.config, untrained)
    return model, feature_extractor


def check_trained(folder: str, missing_keys: list, config, untrained: str = "warn") -> None:
    """A checkpoint without the classifier's weights (a pretrained Whisper or Wav2Vec2 folder, never fine-tuned)
    loads with a random head: its scores are noise under labels LABEL_0, LABEL_1, and transformers' only word
    was a long note. Said in one line naming the folder: a warning (as transformers' pipeline runs such a
    model), or with `untrained="error"` (hfspeech's predict, stream, evaluate, serve) a `UsageError`."""
    if not missing_keys:
        return
    names = ", ".join(sorted(missing_keys)[:4]) + (" ..." if len(missing_keys) > 4 else "")
    default_labels = unnamed_labels(id_ordered_labels(config))
    message = (f"{folder}: its classification head was never trained ({names} not in the checkpoint, newly "
               f"initialized{'; labels LABEL_0 ...' if default_labels else ''}), so its scores would be random; "
               f"fine-tune it first: hfspeech train --model_name_or_path {folder} --data_dir DATA --output_dir RUN")
    if untrained == "error":
        raise UsageError(message)
    logger.warning("warning: %s", message)


def export_feature_extractor(folder: str, trust_remote_code: bool = False):
    """An export folder's feature extractor: numpy's `WaveformPreprocessor` for the waveform extractors (the
    baselines', Wav2Vec2's), transformers' own for the others (AST's and Whisper's spectrograms)."""
    preprocessor = WaveformPreprocessor.from_pretrained(folder)
    if preprocessor is not None:
        return preprocessor
    from transformers import AutoFeatureExtractor

    from hfspeech.models import register

    register()  # a baseline's extractor the numpy path does not know still loads in a fresh process
    return AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=trust_remote_code)
