"""An exported model's config.json read as plain JSON: labels, problem type, thresholds, window.

That is all inference needs from the config of an ONNX or TorchScript export (the graph holds the rest),
so loading one imports no transformers (``AutoConfig`` would import its model registry and torch).
"""

from __future__ import annotations

import json
import os
from typing import Any

from hfspeech.errors import UsageError

# the JSON records a run folder keeps beside its model: written by `training.run`, `hub.push.finish_run` and
# `training.averaging`, read by the model card and copied by `hub.stage`
METRICS_FILE, DATA_REPORT_FILE = "metrics.json", "data_report.json"
INT8_CHECK_FILE = "int8_check.json"  # `hfspeech export --eval_dir`: the int8 gate's numbers, beside the int8 file
HYPERPARAMETERS_FILE = "training_hyperparameters.json"


class JsonConfig:
    """config.json's keys as attributes (``id2label`` with int keys, as in a transformers config); a key the
    file lacks reads as None through ``getattr(config, name, None)``, as the inference code reads them."""

    def __init__(self, values: dict[str, Any]):
        self.__dict__.update(values)
        self.id2label = {int(i): label for i, label in values.get("id2label", {}).items()}
        self.label2id = {label: int(i) for label, i in values.get("label2id", {}).items()}
        self.problem_type = values.get("problem_type")
        self.num_labels = len(self.id2label)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> "JsonConfig":
        values = read_config_json(folder)
        if not isinstance(values, dict) or not values.get("id2label"):
            raise ValueError(f"{os.path.join(folder, 'config.json')}: no id2label in the config, so the model's "
                             "labels are unknown")
        return cls(values)


def read_config_json(folder: str | os.PathLike) -> Any:
    """The folder's config.json parsed; `ValueError` naming the file when it is not valid JSON."""
    return _parse_json(os.path.join(folder, "config.json"), ValueError, "corrupt config")


def read_run_record(path: str | os.PathLike) -> dict:
    """A JSON record a run folder keeps beside its model (metrics.json, data_report.json,
    training_hyperparameters.json ...): {} when the run has none; a `UsageError` naming the file when it is not
    valid JSON, so a damaged record stops `stage` or `average` with one line."""
    return _parse_json(path, UsageError, "corrupt") if os.path.isfile(path) else {}


def _parse_json(path: str | os.PathLike, error: type[Exception], problem: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as cause:
        raise error(f"{path}: {problem}, not valid JSON ({cause})") from None
