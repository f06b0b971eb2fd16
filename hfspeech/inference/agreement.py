"""Does a converted model (int8, ONNX) still classify like the model it came from? Measured on labelled clips.

`compare_on_clips(reference, candidate, *labelled_clips(eval_dir, labels))` runs both on every clip of an audio
folder `DIR/<label>/*.wav` and reports each one's accuracy and their top-1 agreement. `hfspeech export --quantize
int8 --eval_dir DIR` uses it as a gate: an int8 model that loses more than `MAX_ACCURACY_DROP_POINTS` of
accuracy is refused (deleted, with the numbers) unless forced. Top-1 against folder names: a single-label
measure (a multi-label model's folder names are not its label sets).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from hfspeech.data.audio import AudioFileError, find_audio_files
from hfspeech.data.clip_digests import read_training_clips, seen_clips_warning
from hfspeech.data.file_names import shown_name
from hfspeech.errors import HfspeechError
from hfspeech.models.config_json import INT8_CHECK_FILE

MAX_ACCURACY_DROP_POINTS = 1.0


class AccuracyGateError(HfspeechError, ValueError):
    """A converted model that classifies worse than allowed; the message has the numbers."""


@dataclass
class Comparison:
    num_clips: int
    reference_accuracy: float
    candidate_accuracy: float
    agreement: float  # fraction of clips with the same top-1 label

    @property
    def accuracy_drop_points(self) -> float:
        # rounded: accuracies are k/n, and 80/100 - 79/100 came out 1.0000000000000009 points, refused as "more
        # than 1" (the documented limit is inclusive)
        return round(100.0 * (self.reference_accuracy - self.candidate_accuracy), 9)

    def summary(self, reference: str = "fp32", candidate: str = "int8") -> str:
        change = 100 * (self.candidate_accuracy - self.reference_accuracy)  # not -drop: no "-0.00"
        return (f"{self.num_clips} clips: accuracy {reference} {100 * self.reference_accuracy:.2f}%, {candidate} "
                f"{100 * self.candidate_accuracy:.2f}% ({change:+.2f} points), top-1 agreement "
                f"{100 * self.agreement:.2f}%")

    def to_dict(self) -> dict:
        return {**asdict(self), "accuracy_drop_points": self.accuracy_drop_points}


def labelled_clips(eval_dir: str | Path, known_labels: set[str]) -> tuple[list[str], list[str]]:
    """Paths and labels (their folder names) of the audio files under `eval_dir`; a label the model does not
    know is an error naming a file with it. Folder names are read as training reads labels (`written_form`):
    a macOS folder's decomposed `café` was refused as not the model's `café`, which training made of it."""
    from hfspeech.data.labels import written_form

    if not Path(eval_dir).is_dir():  # a missing folder, or a manifest, used to read "no audio files to evaluate on"
        what = "not a folder (a manifest is not read here)" if Path(eval_dir).exists() else "not found"
        raise ValueError(f"--eval_dir {eval_dir}: {what}; expected an audio folder DIR/<label>/*.wav")
    files = find_audio_files(eval_dir)
    if not files:
        raise ValueError(f"{eval_dir}: no audio files to evaluate on (expected DIR/<label>/*.wav)")
    model_label = {written_form(label): label for label in known_labels}
    for path in files:
        if written_form(path.parent.name) not in model_label:
            raise ValueError(f"{shown_name(path)}: label {path.parent.name!r} (its folder) is not one of the "
                             f"model's labels {sorted(known_labels)}")
    return [str(p) for p in files], [model_label[written_form(p.parent.name)] for p in files]


def top_labels(classifier, paths: list[str]) -> list[str]:
    """Each file's top-1 label (its windows averaged), batched across files."""
    from hfspeech.inference.batch import predict_files

    labels = []
    for _, result in predict_files(classifier, paths, top_k=1):
        if isinstance(result, AudioFileError):
            raise result
        labels.append(result.labels[0])
    return labels


def compare_on_clips(reference, candidate, paths: list[str], truth: list[str]) -> Comparison:
    """Accuracy of both `AudioClassifier`s on `paths` (with their `truth` labels, as `labelled_clips` lists a
    folder's), and how often their top-1 labels agree."""
    expected, got = top_labels(reference, paths), top_labels(candidate, paths)
    n = len(paths)
    return Comparison(n, sum(a == t for a, t in zip(expected, truth)) / n, sum(b == t for b, t in zip(got, truth)) / n,
                      sum(a == b for a, b in zip(expected, got)) / n)


def gate_int8(model: str, quantized: Path, eval_dir: str | Path, max_drop_points: float = MAX_ACCURACY_DROP_POINTS,
              force: bool = False, clips: Optional[tuple[list[str], list[str]]] = None) -> tuple[Comparison, dict]:
    """Compare the int8 file with the model it was made from; past `max_drop_points` of accuracy lost, delete
    it and raise `AccuracyGateError` with the numbers, unless `force`. The result is kept beside the int8 file
    (`INT8_CHECK_FILE`), so a kept file says whether it passed, and on what; returned with the comparison.
    `clips`: `eval_dir`'s (paths, labels) as `labelled_clips` listed them already (else listed here)."""
    from hfspeech.inference.classifier import AudioClassifier

    reference, candidate = AudioClassifier.from_pretrained(str(model)), AudioClassifier.from_pretrained(str(quantized))
    paths, truth = clips or labelled_clips(eval_dir, set(reference.id2label.values()))
    comparison = compare_on_clips(reference, candidate, paths, truth)
    passed = comparison.accuracy_drop_points <= max_drop_points
    if not passed and not force:
        quantized.unlink()
        (quantized.parent / "ort_config.json").unlink(missing_ok=True)  # optimum's record of the deleted file
        raise AccuracyGateError(f"{quantized}: int8 loses {comparison.accuracy_drop_points:.2f} accuracy points "
                                f"(more than {max_drop_points:g}) on {comparison.summary()}; the file was deleted "
                                "(--force keeps it)")
    # Past the refusal above, a failed check is one `force` kept: `kept_by_force` is `not passed`, a field of
    # its own so that readers of the file need not know that (docs/export.md).
    record = {**comparison.to_dict(), "max_accuracy_drop_points": max_drop_points, "passed": passed,
              "kept_by_force": not passed, "eval_dir": os.path.basename(os.path.normpath(str(eval_dir))),
              "data_warnings": [w for w in [heard_clips_warning(model, paths)] if w]}
    with open(quantized.parent / INT8_CHECK_FILE, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    return comparison, record


def heard_clips_warning(model: str, paths: list[str]) -> Optional[str]:
    """A gate measured on the model's own training clips (`paths`, the gate's) checks memory, not what int8 costs
    on new speech (an export audit passed `--eval_dir train`: +0.83 points on 360 training clips); said as
    `evaluate` says it."""
    from datasets import Dataset

    record = read_training_clips(model)
    if record is None:
        return None
    return seen_clips_warning(record, Dataset.from_dict({"audio": list(paths)}))
