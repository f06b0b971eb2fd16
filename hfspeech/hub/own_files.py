"""Which of a run folder's derived files are its current model's own, so a staged repo describes only that model.

A run folder outlives the model it first held: `--overwrite_output_dir` retrains into it, leaving an earlier
`hfspeech export`'s onnx/ and an earlier run's test report files (other labels, the other kind's) beside the new
model. Staged as they were, the repo published run A's ONNX file and confusion matrix under run B's weights,
with no word. The ONNX export records the weights it was made from (`models.fingerprint`); the report files
name their labels.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

from hfspeech.evaluation.report_names import (CLASSIFICATION_REPORT_JSON, CONFUSION_MATRIX_JSON, CONFUSION_MATRIX_PNG,
                                              MULTILABEL_REPORT_JSON, PER_CLASS_AP_PNG)
from hfspeech.models.config_json import read_run_record
from hfspeech.models.fingerprint import TRACED_FROM, made_from
from hfspeech.models.scores import is_multi_label

logger = logging.getLogger("hfspeech.hub")

# Each kind's report files: (JSON file naming the labels, the files that go with it).
SINGLE_LABEL_REPORTS = {CLASSIFICATION_REPORT_JSON: (), CONFUSION_MATRIX_JSON: (CONFUSION_MATRIX_PNG,)}
MULTI_LABEL_REPORTS = {MULTILABEL_REPORT_JSON: (PER_CLASS_AP_PNG,)}
SUMMARY_ROWS = ("accuracy", "macro avg", "weighted avg", "micro avg", "samples avg")  # classification_report's


def onnx_problem(run: Path) -> str | None:
    """Why `run/onnx` cannot be published as `run`'s model, or None. Without traced_from.json (an export by an
    hfspeech before it wrote one, or by another tool) nothing tells which weights it holds, so it is refused
    too: published, a stale file goes out under the card's name and numbers, and `hfspeech export RUN` writes
    the record in seconds for a baseline (a warning would scroll past in a `push`)."""
    onnx = run / "onnx"
    int8 = " --quantize int8" if (onnx / "model_quantized.onnx").is_file() else ""  # without it the int8 file went too
    flags = " (with the flags it was made with)" if int8 else ""  # words outside the command, which pastes as it is
    again = f"run `hfspeech export {shlex.quote(str(run))}{int8}` again{flags}"
    if not (onnx / TRACED_FROM).is_file():
        return (f"{onnx}: no {TRACED_FROM}, so nothing tells whether it was exported from {run}'s current weights "
                f"(an older hfspeech's or another tool's export); {again}")
    if not made_from(onnx, run):
        return f"{onnx} was exported from other weights than {run}'s model (retrained since?); {again}"
    return None


def names_labels(name: str, record: dict, labels: set[str]) -> bool:
    """Whether a report JSON names exactly `labels`, as hfspeech writes each kind (a classification report also
    holds its summary rows, `overall <name>` where a label has the summary's name, as `accuracy` may)."""
    if name == CONFUSION_MATRIX_JSON:
        named = record.get("labels")
        return isinstance(named, list) and {str(label) for label in named} == labels
    if name == MULTILABEL_REPORT_JSON:
        return isinstance(record.get("per_class"), dict) and set(record["per_class"]) == labels
    rows = {key for key, row in record.items() if isinstance(row, dict)}
    return labels <= rows and all(key in SUMMARY_ROWS or key.startswith("overall ") for key in rows - labels)


def own_report_files(run: Path, config: dict, split: str = "test") -> tuple[list[str], list[str]]:
    """(the report files of `run` to stage, those left out): only the model's own kind (single- or multi-label)
    whose JSON names exactly config.json's labels, each figure with its JSON. The files left out are warned in
    one line: an earlier run's report in the same folder (other labels, the other kind) was published."""
    labels = {str(label) for label in (config.get("id2label") or {}).values()}
    own, other = (MULTI_LABEL_REPORTS, SINGLE_LABEL_REPORTS) if is_multi_label(config) else \
        (SINGLE_LABEL_REPORTS, MULTI_LABEL_REPORTS)
    kept, left = [], [split + ending for json_name, figures in other.items() for ending in (json_name, *figures)]
    for json_name, figures in own.items():
        names = [split + ending for ending in (json_name, *figures)]
        if not (run / names[0]).is_file():
            left += names[1:]  # a figure without its JSON: nothing says which labels it shows
            continue
        (kept if names_labels(json_name, read_run_record(run / names[0]), labels) else left).extend(names)
    left = [name for name in left if (run / name).is_file()]
    if left:
        logger.warning("warning: %s: not staged: %s (another kind of model's report, or other labels than "
                       "config.json's: an earlier run's in this folder?)", run, ", ".join(left))
    return [name for name in kept if (run / name).is_file()], left
