"""Does a converted model (int8, ONNX) still classify like the model it came from? Measured on labelled clips.

`compare_on_clips(reference, candidate, *labelled_clips(eval_dir, labels))` runs both on every clip of an audio
folder `DIR/<label>/*.wav` and reports each one's accuracy and their top-1 agreement. `hfspeech export --quantize
int8 --eval_dir DIR` uses it as a gate: an int8 model that loses more than `MAX_ACCURACY_DROP_POINTS` of
accuracy is refused (deleted, with the numbers) unless forced. Top-1 against folder names is a single-label
measure: a multi-label model's folder names are not its label sets, so its gate reads any audio folder and compares
the two models' label decisions at the model's thresholds instead (`compare_decisions`: changes counted against the
decisions active in either model).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from hfspeech.data.audio import AudioFileError
from hfspeech.data.clip_digests import forget_read_files, trained_on_warning
from hfspeech.errors import HfspeechError
from hfspeech.inference.held_out import HeldOutError, labelled_clips  # noqa: F401 (export and stage import them here)
from hfspeech.models.config_json import INT8_CHECK_FILE

if TYPE_CHECKING:
    from hfspeech.inference.classifier import Prediction

MAX_ACCURACY_DROP_POINTS = 1.0


class AccuracyGateError(HfspeechError, ValueError):
    """A converted model that classifies worse than allowed; the message has the numbers."""


@dataclass
class Comparison:
    num_clips: int
    reference_accuracy: float
    candidate_accuracy: float
    agreement: float  # fraction of clips with the same top-1 label
    min_agreement_percent: Optional[float] = None  # `--min_agreement`: a floor on it too (none by default)
    limit_key = "max_accuracy_drop_points"  # the limit's name in int8_check.json (not a field: no annotation)

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

    def agrees_enough(self) -> bool:
        """The top-1 agreement floor: accuracy alone passed an int8 BC-ResNet that changed 6.2% of its answers
        (93.8% agreement, -0.6 points), one label lost here, another gained there."""
        floor = self.min_agreement_percent
        return floor is None or round(100.0 * self.agreement, 9) >= floor

    def passes(self, limit: float) -> bool:
        return self.accuracy_drop_points <= limit and self.agrees_enough()

    def refusal(self, limit: float) -> str:
        if not self.agrees_enough():
            return (f"int8 agrees with the original on {100 * self.agreement:.2f}% of the clips (fewer than "
                    f"--min_agreement {self.min_agreement_percent:g}%) on {self.summary()}")
        return f"int8 loses {self.accuracy_drop_points:.2f} accuracy points (more than {limit:g}) on {self.summary()}"


@dataclass
class DecisionComparison:
    """A multi-label model's int8 check: each clip's active labels in the candidate against the reference's, both at
    the model's thresholds. Top-1 saw none of the changes that matter there: a Whisper probe's int8 changed the
    active set of 5 of 20 clips (macro-F1 0.608 -> 0.540) and was failed only by chance, on top-1.
    The changes are counted against the decisions active in either model (|A xor B| / |A or B|, summed over clips),
    not against clips x labels: nearly every pair is inactive in both, so the more labels the fewer percent the
    same changes made (5 changed on 5 of 20 clips: 4.17% of 6 labels, refused; 0.5% of 50, passed; 100 changes
    that touched every clip of 527 labels: 0.95%, passed)."""
    num_clips: int
    num_labels: int
    changed_decisions: int  # (clip, label) pairs active in one model and not in the other
    active_decisions: int  # (clip, label) pairs active in either model: what the changes are counted against
    changed_clips: int  # clips whose active set changed
    reference_active: int  # active (clip, label) pairs
    candidate_active: int
    limit_key = "max_changed_active_percent"  # the limit's name in int8_check.json (not a field: no annotation)

    @classmethod
    def of_sets(cls, expected: list[frozenset[str]], got: list[frozenset[str]], num_labels: int
                ) -> "DecisionComparison":
        """From each clip's active labels in the reference (`expected`) and the candidate (`got`)."""
        return cls(num_clips=len(expected), num_labels=num_labels,
                   changed_decisions=sum(len(a ^ b) for a, b in zip(expected, got)),
                   active_decisions=sum(len(a | b) for a, b in zip(expected, got)),
                   changed_clips=sum(a != b for a, b in zip(expected, got)),
                   reference_active=sum(map(len, expected)), candidate_active=sum(map(len, got)))

    @property
    def changed_active_percent(self) -> float:
        # 0 active anywhere: nothing changed, 0%. Rounded as `Comparison.accuracy_drop_points` is: the limit is
        # inclusive, and 1 of 100 must be 1.0
        return round(100.0 * self.changed_decisions / max(1, self.active_decisions), 9)

    def summary(self, reference: str = "fp32", candidate: str = "int8") -> str:
        return (f"{self.num_clips} clips x {self.num_labels} labels at the model's thresholds: "
                f"{self.changed_decisions} of the {self.active_decisions} decisions active in either model changed "
                f"({self.changed_active_percent:.2f}%), active set changed on {self.changed_clips} clip(s); active "
                f"labels {reference} {self.reference_active}, {candidate} {self.candidate_active}")

    def to_dict(self) -> dict:
        return {**asdict(self), "changed_active_percent": self.changed_active_percent}

    def passes(self, limit: float) -> bool:
        return self.changed_active_percent <= limit

    def refusal(self, limit: float) -> str:
        return (f"int8 changes {self.changed_active_percent:.2f}% of the label decisions active in either model "
                f"(more than {limit:g}%) on {self.summary()}")


def held_out_labels(config: dict) -> Optional[set[str]]:
    """`labelled_clips`' `known_labels` for a model (its `config.json` as read): a single-label model's labels,
    which a held-out folder's names must be; None for a multi-label model, whose folder names are not label sets."""
    from hfspeech.models.scores import is_multi_label

    return None if is_multi_label(config) else {str(label) for label in (config.get("id2label") or {}).values()}


def file_predictions(classifier, paths: list[str]) -> list[Prediction]:
    """Each file's `Prediction` (its windows averaged; top-1 and, for a multi-label model, its active labels at the
    model's thresholds, as `hfspeech predict` marks them), batched across files; a bad file raises its error."""
    from hfspeech.inference.batch import predict_files

    predictions = []
    for _, result in predict_files(classifier, paths, top_k=1):
        if isinstance(result, AudioFileError):
            raise result
        predictions.append(result)
    return predictions


def top_labels(classifier, paths: list[str]) -> list[str]:
    """Each file's top-1 label."""
    return [prediction.labels[0] for prediction in file_predictions(classifier, paths)]


def compare_on_clips(reference, candidate, paths: list[str], truth: list[str],
                     min_agreement_percent: Optional[float] = None) -> Comparison:
    """Accuracy of both `AudioClassifier`s on `paths` (with their `truth` labels, as `labelled_clips` lists a
    folder's), and how often their top-1 labels agree; `min_agreement_percent`: the floor the agreement is held to."""
    expected, got = top_labels(reference, paths), top_labels(candidate, paths)
    n = len(paths)
    return Comparison(n, sum(a == t for a, t in zip(expected, truth)) / n, sum(b == t for b, t in zip(got, truth)) / n,
                      sum(a == b for a, b in zip(expected, got)) / n, min_agreement_percent)


def active_sets(classifier, paths: list[str]) -> list[frozenset[str]]:
    """Each file's active labels."""
    return [frozenset(prediction.active_labels) for prediction in file_predictions(classifier, paths)]


def compare_decisions(reference, candidate, paths: list[str]) -> DecisionComparison:
    """How a multi-label `candidate`'s active labels differ from the `reference`'s on `paths`."""
    return DecisionComparison.of_sets(active_sets(reference, paths), active_sets(candidate, paths),
                                      len(reference.id2label))


def gate_int8(model: str, quantized: Path, eval_dir: str | Path, max_drop_points: float = MAX_ACCURACY_DROP_POINTS,
              force: bool = False, clips: Optional[tuple[list[str], list[str]]] = None,
              min_agreement: Optional[float] = None) -> tuple[Comparison | DecisionComparison, dict]:
    """Compare the int8 file with the model it was made from; past `max_drop_points` of accuracy lost (a
    multi-label model: past that percent of its label decisions active in either model changed), delete it and
    raise `AccuracyGateError` with the numbers, unless `force`. The result is kept beside the int8 file
    (`INT8_CHECK_FILE`), so a kept file says whether it passed, and on what; returned with the comparison.
    `clips`: `eval_dir`'s (paths, labels) as `labelled_clips` listed them already (else listed here). Its clips are
    read anew for the training-clips check (`heard_clips_warning`), not looked up in an earlier call's digests."""
    from hfspeech.inference.classifier import AudioClassifier
    from hfspeech.models.scores import is_multi_label

    forget_read_files()  # a clip rewritten since an earlier evaluate or gate in this process, with its stat kept
    reference, candidate = AudioClassifier.from_pretrained(str(model)), AudioClassifier.from_pretrained(str(quantized))
    multi_label = is_multi_label(getattr(reference, "config", None))  # a stand-in without one: single-label
    paths, truth = clips or labelled_clips(eval_dir, None if multi_label else set(reference.id2label.values()))
    if multi_label and min_agreement is not None:
        raise HeldOutError("--min_agreement: a multi-label model's gate compares its label decisions, not top-1 "
                           "labels; --max_accuracy_drop is their limit (percent of decisions changed)")
    comparison = compare_decisions(reference, candidate, paths) if multi_label else \
        compare_on_clips(reference, candidate, paths, truth, min_agreement)
    passed = comparison.passes(max_drop_points)
    if not passed and not force:
        quantized.unlink()
        (quantized.parent / "ort_config.json").unlink(missing_ok=True)  # optimum's record of the deleted file
        raise AccuracyGateError(f"{quantized}: {comparison.refusal(max_drop_points)}; the file was deleted "
                                "(--force keeps it)")
    # Past the refusal above, a failed check is one `force` kept: `kept_by_force` is `not passed`, a field of
    # its own so that readers of the file need not know that (docs/export.md).
    record = {**comparison.to_dict(), comparison.limit_key: max_drop_points, "passed": passed,
              "kept_by_force": not passed, "eval_dir": os.path.basename(os.path.normpath(str(eval_dir))),
              "batch_size": getattr(candidate, "batch_size", None),  # dynamic int8's scores depend on the batch
              "data_warnings": [w for w in [heard_clips_warning(model, paths)] if w]}
    with open(quantized.parent / INT8_CHECK_FILE, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    return comparison, record


def heard_clips_warning(model: str, paths: list[str]) -> Optional[str]:
    """A gate measured on the model's own training clips (`paths`, the gate's) checks memory, not what int8 costs
    on new speech (an export audit passed `--eval_dir train`: +0.83 points on 360 training clips); said as
    `evaluate` says it. A model whose run has no record of its clips (an earlier version's) is said to be unchecked:
    its card showed such a score as held out."""
    from datasets import Dataset

    return trained_on_warning(model, Dataset.from_dict({"audio": list(paths)}))
