"""The run's test pass: the best model on the test split (validation when there is none), its numbers
(metrics.json `test_*`, the test report files, the model card's Results) measured as `hfspeech evaluate` measures them.

The Trainer's pass scores one centre crop of `--max_length_seconds` per clip, while `hfspeech evaluate` and
`predict` score the whole clip in windows of that length, mean of the windows. On clips no longer than the crop the two
read the same audio and the Trainer's pass stays (its numbers, seeded ones included, are unchanged). Where a test
clip is longer, the two disagreed (0.441 against 0.588 on 34 utterances of 2-5 s under the 2-s default crop, and the
card showed both without a word), so the split is scored by `evaluation.evaluate_model.score_split` itself, the code
of `hfspeech evaluate` (whole clips, windows, thresholds as saved), on the model just saved, as cross-validate's pooled
score re-scores its folds. The stages allow no other seam: training may not import inference, where the windows are.
metrics.json `test_scored_as` says which of the two measured the numbers.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from contextlib import contextmanager
from typing import Optional

import numpy as np
from datasets import Dataset, DatasetDict

from hfspeech.data.audio import seconds_to_samples
from hfspeech.data.columns import column_values
from hfspeech.data.labelled import DataSpec
from hfspeech.data.prepare import DataReport
from hfspeech.data.progress_bars import datasets_bars_follow
from hfspeech.evaluation.evaluate_model import EvaluateArguments, ScoredSplit, score_split
from hfspeech.evaluation.report import write_evaluation_report
from hfspeech.models.inputs import window_seconds_of
from hfspeech.models.scores import thresholds_from_config, thresholds_to_dict
from hfspeech.training.feature_cache import CachedHeadModel
from hfspeech.training.multilabel import write_multilabel_test_report
from hfspeech.training.trainer import AudioClassificationTrainer

logger = logging.getLogger("hfspeech.train")
SCORED_AS_KEY = "test_scored_as"


def evaluate_on_test_split(trainer: AudioClassificationTrainer, views: dict, label_names: list[str],
                           decoded: Optional[DatasetDict] = None, spec: Optional[DataSpec] = None,
                           trust_remote_code: bool = False) -> dict:
    """The best model (saved already) on the test split (validation when there is none), with its report files
    written. `decoded`: the prepared splits (their `length` and `path` columns say whether a clip outlasts the crop
    and where it is); `spec`: how the run decoded its data, which the re-scoring decodes the same way."""
    split = "test" if "test" in views else "validation" if "validation" in views else None
    if split is None:
        return {}
    model = trainer.model.model if isinstance(trainer.model, CachedHeadModel) else trainer.model
    window = window_seconds_of(model.config, trainer.processing_class)
    clips = decoded.get(split) if decoded is not None else None
    longer = outlasts(clips, seconds_to_samples(window, trainer.processing_class.sampling_rate))
    if spec is None or not longer:
        known = clips is not None and "length" in clips.column_names
        return {**trainer_pass(trainer, views[split], label_names, model.config, split), "test_split": split,
                SCORED_AS_KEY: f"whole clips, none longer than {window:g} s" if known and not longer
                else f"centre crop of {window:g} s"}
    metrics, failure = {}, None
    if trainer.is_world_process_zero():  # the others wait: `score_split` is no collective call
        metrics, failure = whole_clip_numbers(trainer, clips, label_names, spec, trust_remote_code, split)
    if metrics and trainer.is_multi_label:  # as the Trainer's pass records them
        metrics["label_thresholds"] = applied_thresholds(model.config, label_names)
    scored_as = f"whole clips, windows of {window:g} s, mean"
    if failure is not None and trainer.args.world_size == 1:
        metrics, scored_as = trainer_pass(trainer, views[split], label_names, model.config, split), \
            f"centre crop of {window:g} s"
    elif failure is not None:  # the other processes took no Trainer pass: one alone would wait for them forever
        scored_as = f"not scored: {failure}"
    return {**metrics, "test_split": split, SCORED_AS_KEY: scored_as}


def applied_thresholds(config, label_names: list[str]) -> dict[str, float]:
    """The thresholds the test pass applied, {label: threshold}: the saved ones, 0.5 for a label without one. A run
    trained with `--tune_thresholds False` saves none, and its test pass ended on an AttributeError after training
    (config has no `label_thresholds`), leaving no metrics.json."""
    return thresholds_to_dict(label_names, thresholds_from_config(config, label_names))


def outlasts(clips: Optional[Dataset], window: int) -> bool:
    """Whether any prepared clip (its `length` column, in samples) is longer than `window` samples."""
    return clips is not None and "length" in clips.column_names and max(column_values(clips, "length"),
                                                                         default=0) > window


def trainer_pass(trainer: AudioClassificationTrainer, view, label_names: list[str], config, split: str) -> dict:
    """The Trainer's pass over the split's view (one centre crop per clip), its report files written (`test_*`,
    whichever `split` it is: its warnings name the split)."""
    prediction = trainer.predict(view, metric_key_prefix="test")
    if not trainer.is_world_process_zero():
        return {}
    output_dir = trainer.args.output_dir
    if trainer.is_multi_label:
        written = write_multilabel_test_report(output_dir, prediction, config, label_names, prefix="test",
                                               clips=f"{split} clips")
        return {**{f"test_{k}": v for k, v in written.items()},
                "label_thresholds": applied_thresholds(config, label_names)}
    predictions = np.argmax(prediction.predictions, axis=-1)
    written = write_evaluation_report(output_dir, predictions, prediction.label_ids, label_names, prefix="test",
                                      clips=f"{split} clips")
    return {f"test_{k}": v for k, v in written.items()}


def whole_clip_numbers(trainer: AudioClassificationTrainer, clips: Dataset, label_names: list[str], spec: DataSpec,
                       trust_remote_code: bool, split: str) -> tuple[dict, Optional[str]]:
    """(the test numbers, None), the split scored by `score_split` on the saved model, its reports written; or
    ({}, the reason) where it could not be, warned: the Trainer's pass is then the fallback."""
    paths = column_values(clips, "path")
    if not all(os.path.isfile(path) for path in paths):
        failure = "its clips are not all files on disk (a dataset's clips held as bytes)"
    else:
        try:
            scored = rescored(trainer, clips, paths, label_names, spec, trust_remote_code)
            return written_reports(trainer.args.output_dir, scored, split), None
        except Exception as error:  # the model is trained and saved: a failed re-scoring costs its numbers only
            failure = f"re-scoring failed ({type(error).__name__}: {error})"
    logger.warning("the %s split has clips longer than the model's window, which `hfspeech evaluate` scores whole, "
                   "in windows, but %s: the run's test numbers are not scored so (metrics.json %s says how they are)",
                   split, failure, SCORED_AS_KEY)
    return {}, failure


def rescored(trainer: AudioClassificationTrainer, clips: Dataset, paths: list[str], label_names: list[str],
             spec: DataSpec, trust_remote_code: bool) -> ScoredSplit:
    """`score_split` on a manifest of the split's own clips (the rows kept, as carved and limited), decoded as the
    run decoded them (`spec.preparation`), with the model the run saved in its output folder."""
    multi_label = bool(trainer.is_multi_label)
    with tempfile.TemporaryDirectory(prefix="hfspeech-test-pass-") as folder:
        manifest = os.path.join(folder, "test.jsonl")
        with open(manifest, "w", encoding="utf-8") as f:
            for path, label in zip(paths, column_values(clips, "label")):
                named = spec.label_separator.join(label_names[i] for i in label) if multi_label else label_names[label]
                f.write(json.dumps({"path": os.path.abspath(path), "label": named}) + "\n")
        arguments = EvaluateArguments(model=trainer.args.output_dir, batch_size=trainer.args.per_device_eval_batch_size,
                                      trust_remote_code=trust_remote_code, device=device_flag(trainer.args.device))
        # (the model trims each clip itself where trained trimmed: evaluate drops the flag, warning when it is given)
        held_out = DataSpec(source={"test_file": manifest}, preparation={**spec.preparation, "trim": False},
                            label_separator=spec.label_separator)
        with evaluate_log_quiet(), datasets_bars_follow(trainer.args.disable_tqdm):
            return score_split(arguments, held_out)


def device_flag(device) -> str:
    """The run's device as `--device` takes it: accelerate names each CPU process of a multi-process run
    `cpu:<index>`, no `--device` form (every such run whose test clips outlast the crop had no test numbers); the
    processes share the one CPU, which `cpu` names."""
    return "cpu" if device.type == "cpu" else str(device)


@contextmanager
def evaluate_log_quiet():
    """`score_split` logs as `hfspeech evaluate` does (the split's summary, the model's training-clips record, not yet
    written, the data stage's notes on the split's labels): in a run, whose data stage said all that already, those
    lines would repeat it or mislead."""
    loggers = [logging.getLogger(name) for name in ("hfspeech.evaluate", "hfspeech.data")]
    levels = [logger.level for logger in loggers]
    for quiet in loggers:
        quiet.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for quiet, level in zip(loggers, levels):
            quiet.setLevel(level)


def written_reports(output_dir: str, scored: ScoredSplit, split: str) -> dict:
    """The test report files and `test_*` numbers of a split scored by `score_split`, as the Trainer's pass writes
    them (a multi-label run's at its saved thresholds); `split`: the run's split they are of, which warnings name."""
    return {f"test_{k}": v for k, v in scored.write_reports(output_dir, "test", clips=f"{split} clips").items()}


def warn_tested_on_validation(report: DataReport, chose_checkpoint: bool, tuned_thresholds: bool) -> None:
    """With no test split the test numbers come from the validation split; where that split also chose the best
    checkpoint or (multi-label) the thresholds F1, precision, recall and subset accuracy are measured at, they
    are optimistic, and said so where the numbers go (metrics.json `data_warnings`, data_report.json, the card)."""
    uses = [use for use, applies in (("chose the best checkpoint", chose_checkpoint),
                                     ("tuned the label thresholds", tuned_thresholds)) if applies]
    if not uses:
        return
    warning = (f"no test split: the test numbers are measured on the validation split, which {' and '.join(uses)}; "
               "they are optimistic (hold clips out with --test_split_percentage, or give a test split)")
    logger.warning("data: %s", warning)
    report.warnings.append(warning)
