"""Is this folder a model? Clear one-line errors before transformers or onnxruntime fail deep inside.

`check_model_folder` is for a training run's folder (config.json, weights, feature extractor, label maps
that agree with the classifier in the weights); `check_export_folder` for an exported model (`hfspeech
export` writes config.json and preprocessor_config.json beside the .onnx / .pt file). Loading for
inference, export and publishing all start here.
"""

from __future__ import annotations

import os
import re
from typing import Optional

from hfspeech.folder_writers import being_written
from hfspeech.models.config_json import read_config_json
from hfspeech.models.loading import WEIGHT_FILES, NotAModelError

CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")  # Trainer's checkpoint folders (the training stage's too)


def check_model_folder(path: str, trust_remote_code: bool = False) -> None:
    """A clear error for a path that is not a saved model, before transformers fails deep inside."""
    if not os.path.exists(path):
        exported = path.lower().endswith((".onnx", ".pt"))  # as the user named it; `.ONNX` too, as backends load
        raise NotAModelError(f"{path}: {'exported model file' if exported else 'model folder'} not found"
                             f"{_export_hint(path)}")
    if not os.path.isdir(path):
        raise NotAModelError(f"{path}: not a model folder (it is a file; pass the folder holding config.json)")
    names = set(os.listdir(path))
    if "config.json" not in names:
        raise _unsaved(path, f"not a model folder (no config.json){_checkpoint_hint(path, names)}")
    if not names & set(WEIGHT_FILES):
        raise _unsaved(path, f"no model weights (model.safetensors) in the folder{_checkpoint_hint(path, names)}")
    if "preprocessor_config.json" not in names:  # the Trainer saves the model first, the feature extractor after
        raise _unsaved(path, "no feature extractor (preprocessor_config.json) in the folder")
    check_model_config(path, trust_remote_code)


def _unsaved(path: str, problem: str) -> NotAModelError:
    """`problem`, or, while a training run holds the folder (`folder_writers.being_written`), that it is still being
    written: `predict RUN` in a run's first epoch was told the run had stopped, and to resume it."""
    if being_written(path):
        return NotAModelError(f"{path}: a training run (or an average) is writing this folder now (no model saved "
                              "yet); wait for it to end")
    return NotAModelError(f"{path}: {problem}")


def _export_hint(path: str) -> str:
    """For a run's `onnx` or `torchscript` folder not written yet: the command that writes it (a new user's
    `hfspeech stream runs/kws/onnx` said only "model folder not found")."""
    run, kind = os.path.split(os.path.normpath(path))
    if kind in ("onnx", "torchscript") and os.path.isfile(os.path.join(run or ".", "config.json")):
        return f"; the run has no {kind} export yet: `hfspeech export {run or '.'} --format {kind}` writes it"
    return ""


def _checkpoint_hint(path: str, names: set) -> str:
    """Where the model is, when `path` is one of the two folders of a training run that are not a model: a
    checkpoint of a frozen-feature run (its head alone, for resuming), or a run stopped before its final save."""
    if CHECKPOINT_NAME.match(os.path.basename(os.path.normpath(path))) and "trainer_state.json" in names:
        run = os.path.dirname(os.path.normpath(path)) or "."
        return (f"; a Trainer checkpoint without config.json (a --freeze_base_model run keeps only the head in its "
                f"checkpoints, to resume from): use the run folder {run}")
    checkpoints = sorted(filter(CHECKPOINT_NAME.match, names), key=lambda name: int(name[11:]))
    if checkpoints:
        return (f"; the run stopped before saving its model? its last checkpoint is "
                f"{os.path.join(path, checkpoints[-1])} (resume with --resume_from_checkpoint)")
    return ""


def check_model_config(path: str, trust_remote_code: bool = False) -> dict:
    """The folder's config.json, checked: valid JSON, a model_type transformers knows (or remote code the
    user allowed), and label maps that agree with each other and with the classifier in the weights."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from hfspeech.models import register

    register()
    config_file = os.path.join(path, "config.json")
    try:
        config = read_config_json(path)
    except ValueError as error:
        raise NotAModelError(str(error)) from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise NotAModelError(f"{config_file}: no model_type in the config, so the model's class is unknown")
    model_type = config["model_type"]
    if model_type not in CONFIG_MAPPING:
        if "AutoConfig" not in config.get("auto_map", {}):
            raise NotAModelError(f"{config_file}: unknown model_type {model_type!r} (not a transformers or "
                                 "hfspeech model, and no code in the folder)")
        if not trust_remote_code:
            raise NotAModelError(f"{config_file}: model_type {model_type!r} needs the code in the folder; "
                                 "run it only if you trust it, with trust_remote_code=True")
    _check_saved_baseline_values(config_file, config)
    id2label, label2id = config.get("id2label", {}), config.get("label2id", {})
    if label2id and {str(i): l for l, i in label2id.items()} != {str(i): l for i, l in id2label.items()}:
        raise NotAModelError(f"{config_file}: id2label and label2id disagree")
    classes = _classifier_size(os.path.join(path, "model.safetensors"))
    if id2label and classes is not None and classes != len(id2label):
        raise NotAModelError(f"{config_file}: {len(id2label)} labels in id2label but the classifier in "
                             f"model.safetensors has {classes} outputs")
    return config


def _check_saved_baseline_values(config_file: str, config: dict) -> None:
    """A baseline's config.json with a value this version refuses (saved by an earlier one): named before a
    command writes anything (`stage` copied such a run into a repo that could not be loaded)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from hfspeech.models.configuration_baseline import AudioBaselineConfig

    config_class = CONFIG_MAPPING[config["model_type"]] if config["model_type"] in CONFIG_MAPPING else None
    if config_class is None or not issubclass(config_class, AudioBaselineConfig):
        return
    try:
        config_class.from_dict(config)
    except ValueError as error:  # marked by `AudioBaselineConfig.from_dict`
        if getattr(error, "saved_config", False):
            raise NotAModelError(f"{config_file}: {error}") from None
        raise


def _classifier_size(weights_file: str) -> Optional[int]:
    """Rows of the last layer's weight (`classifier.weight`), read from the safetensors header alone;
    None when there is no such tensor or the file cannot be read (the loader then names the problem)."""
    from safetensors import safe_open

    try:
        with safe_open(weights_file, framework="pt") as f:
            return f.get_slice("classifier.weight").get_shape()[0] if "classifier.weight" in f.keys() else None
    except Exception:  # a missing or damaged file: reported by from_pretrained with its own error
        return None


def check_export_folder(folder: str, model_file) -> None:
    """The same for an exported model: the file itself, and the config.json (labels, window) and
    preprocessor_config.json (sampling rate) that `hfspeech export` writes beside it."""
    if not os.path.isfile(model_file):
        # `--backend onnx/torchscript` on a training run with no export of that kind (`inference.backends.run_export`
        # finds its one export folder): the command that writes one.
        weights = any(os.path.isfile(os.path.join(folder, name)) for name in WEIGHT_FILES)
        kind = "onnx" if str(model_file).lower().endswith(".onnx") else "torchscript"
        hint = (f"; {folder} is a model folder: predict its export folder (the run has no {kind} export: `hfspeech "
                f"export {folder} --format {kind}` writes {os.path.join(folder, kind)})") if weights else ""
        raise NotAModelError(f"{model_file}: no such exported model file{hint}")
    for name, holds in (("config.json", "labels"), ("preprocessor_config.json", "sampling rate")):
        if not os.path.isfile(os.path.join(folder, name)):
            raise NotAModelError(f"{folder}: no {name} ({holds}) beside {os.path.basename(model_file)}; "
                                 "`hfspeech export` writes it")
