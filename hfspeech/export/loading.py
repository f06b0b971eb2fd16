"""Open a saved model folder for export, or stop with an error that names the folder (or file) and the problem.

Exporters fail late and obscurely on a bad folder (a JSON traceback from deep inside transformers, a
safetensors header error, or worse: a weights file from another model loads with the missing weights
randomly initialised, and exports without a word). These checks run first, in the order a reader
would look: the folder, its config, its weights, its feature extractor.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification, PretrainedConfig

from hfspeech.folder_writers import being_written
from hfspeech.models.folder_checks import NotAModelError, check_model_folder
from hfspeech.models.loading import check_model_name, unreadable_model_files
from hfspeech.errors import HfspeechError


class ExportError(HfspeechError, ValueError):
    """A model folder that cannot be exported; the message starts with the folder or file at fault."""


def read_config(model_dir: str | Path) -> PretrainedConfig:
    """The folder's config, after checking that the folder holds config.json, weights and a feature extractor."""
    folder = Path(model_dir)
    try:
        check_model_name(folder)  # not "corrupt weights": a name that is not UTF-8 (or under LC_ALL=C, not ASCII)
        check_model_folder(str(folder))
    except NotAModelError as error:
        raise ExportError(str(error)) from None
    if being_written(folder):  # a resumed run's earlier model, which train may rewrite while it is read
        raise ExportError(f"{folder}: a training run (or an average) is writing this folder now; export it once "
                          "the run ends (or export one of its checkpoint-* folders)")
    config_file = folder / "config.json"
    try:
        return AutoConfig.from_pretrained(folder)
    except (ValueError, KeyError) as error:
        raise ExportError(f"{config_file}: cannot be read as a transformers config ({error})") from None


def load_model(model_dir: str | Path, config: PretrainedConfig):
    """The model in eval mode and its feature extractor; weights that do not fit the config are an error."""
    folder = Path(model_dir)
    weights = next((folder / name for name in ("model.safetensors", "pytorch_model.bin") if (folder / name).exists()),
                   folder)
    if (unreadable := unreadable_model_files(folder)) is not None:  # safetensors: "No such file", called corrupt
        raise ExportError(unreadable)
    try:
        model, info = AutoModelForAudioClassification.from_pretrained(folder, config=config, output_loading_info=True)
    except ValueError as error:
        if "Unrecognized configuration class" in str(error):
            raise ExportError(f"{folder}: model_type {config.model_type!r} is not an audio classifier") from None
        raise ExportError(f"{weights}: corrupt weights, cannot be loaded ({error})") from None
    except Exception as error:  # safetensors raises its own SafetensorError, torch a RuntimeError or pickle error
        raise ExportError(f"{weights}: corrupt weights, cannot be loaded ({type(error).__name__}: {error})") from None
    if info["missing_keys"] or info["mismatched_keys"]:
        problems = [*info["missing_keys"], *(key for key, *_ in info["mismatched_keys"])]
        raise ExportError(f"{weights}: weights do not match config.json ({len(problems)} tensors missing or "
                          f"of the wrong shape, e.g. {problems[0]})")
    try:
        feature_extractor = AutoFeatureExtractor.from_pretrained(folder)
    except (OSError, ValueError) as error:
        raise ExportError(f"{folder / 'preprocessor_config.json'}: corrupt feature extractor config "
                          f"({error})") from None
    return model.eval(), feature_extractor
