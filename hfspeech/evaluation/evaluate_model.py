"""Evaluate a trained model on labelled data in any input layout (`hfspeech evaluate`).

The data's labels must be labels the model knows: a clip labelled with anything else stops the run
with an error naming the file and the label, rather than being scored as a silent mistake.

A multi-label model (`config.problem_type == "multi_label_classification"`) reads each clip's label
list (`--label_separator`), scores clips with a sigmoid per label, and reports mAP, ROC-AUC, F1 and
subset accuracy at the thresholds saved in its config (`label_thresholds`), as training's test report.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from datasets import Audio, DatasetDict
from tqdm.auto import tqdm

from hfspeech.data.audio import AudioFileError
from hfspeech.data.clip_digests import forget_read_files, trained_on_warning
from hfspeech.data.columns import column_values
from hfspeech.data.labelled import DataSpec, load_evaluation_split
from hfspeech.data.prepare import DataReport, kept_rows, prepare_dataset, with_skip_hint
from hfspeech.data.progress_bars import datasets_bars_follow, stderr_is_terminal
from hfspeech.data.samples import trim_top_db_of
from hfspeech.data.split_audit import audit_missing_classes
from hfspeech.data.multi_hot import multi_hot
from hfspeech.errors import UsageError, refuse_folder_named_like_a_file, writing_to
from hfspeech.evaluation.arguments import EvaluateArguments  # a module of its own: a fast `--help`
from hfspeech.evaluation.report import write_evaluation_report, write_metrics_json, write_multilabel_report
from hfspeech.evaluation.report_names import METRICS_ENDING, REPORT_ENDINGS, metrics_file_name
from hfspeech.inference.batch import score_files
from hfspeech.inference.classifier import AudioClassifier, FileScores, decision_thresholds
from hfspeech.inference.loading import backend_for_device
from hfspeech.inference.windows import check_windows_cover
from hfspeech.models.config_json import DATA_REPORT_FILE
from hfspeech.models.scores import is_multi_label, thresholds_from_config
from hfspeech.output_folders import check_output_folder

logger = logging.getLogger("hfspeech.evaluate")


def evaluate_model(eval_args: EvaluateArguments, spec: DataSpec) -> dict:
    """Score every clip of one split with the model and write the report files; returns the metrics. Bars
    (datasets' cast/map bars, the scoring bar) only where stderr is a terminal: in a log each redraw was a line.
    Every clip is read anew for the training-clips check, not looked up in digests an earlier call in this process
    left (`clip_digests`; only training forgot them: in a notebook, a clip rewritten since with its stat kept was
    counted as it had been, and the memo grew with every folder evaluated)."""
    forget_read_files()
    with datasets_bars_follow(not stderr_is_terminal()):
        return _evaluate(eval_args, spec)


@dataclass
class ScoredSplit:
    """One split scored by a model, as `hfspeech evaluate` scores it: what its reports (and a cross-validation's
    pooled out-of-fold scores, `training.cross_validation_pooled`) are computed from."""

    split: str
    label_names: list[str]
    multi_label: bool
    references: np.ndarray  # class ids (single-label) or multi-hot [clips, labels]
    scores: np.ndarray  # [clips, labels]: sigmoids (multi-label), the classifier's scores (single-label)
    predicted: np.ndarray  # class ids (single-label: ties of `vote` broken as `predict` breaks them); else empty
    thresholds: Optional[np.ndarray]  # multi-label: each label's decision threshold under this aggregation
    report: DataReport
    clips: Optional[str] = None  # what warnings call the clips ("clips of FOLDER"); None: "{prefix} clips"

    def write_reports(self, output_dir: str, prefix: str, per_label_false_alarms: bool = False,
                      clips: Optional[str] = None) -> dict:
        """The report files of this split in `output_dir` (`{prefix}_...`) and their metrics: evaluate's, and a
        training run's test pass where it re-scores long clips (`training.test_pass`), one branch for both.
        `clips`: what a warning or a title calls the clips, where `{prefix} clips` would misname them (default:
        `self.clips`)."""
        if self.multi_label:
            return write_multilabel_report(output_dir, self.scores, self.references, self.label_names, self.thresholds,
                                           prefix=prefix, per_label_false_alarms=per_label_false_alarms,
                                           clips=clips or self.clips)
        return write_evaluation_report(output_dir, self.predicted, self.references, self.label_names, prefix=prefix,
                                       clips=clips or self.clips)


def score_split(eval_args: EvaluateArguments, spec: DataSpec,
                before_scoring: Callable[[], None] = lambda: None) -> ScoredSplit:
    """Every clip of one split scored by `eval_args.model`; nothing written. A multi-label split with no event in
    any clip is a false-alarm set (`encode_labels(allow_no_event=True)`), not an error. `before_scoring` runs once
    the model has loaded and the split is found, before the scoring's minutes: evaluate's warning that it replaces
    another model's reports came before a missing model's refusal, for reports that then stayed."""
    classifier = AudioClassifier.from_pretrained(
        eval_args.model, trust_remote_code=eval_args.trust_remote_code, batch_size=eval_args.batch_size,
        backend=backend_for_device(eval_args.model, None, eval_args.device), device=eval_args.device,
        untrained="error")
    check_windows_cover(*classifier.window_sizes(eval_args.window_seconds, eval_args.hop_seconds),
                        classifier.sampling_rate)  # as `hfspeech predict`: no audio left unscored between windows
    label_names = [classifier.id2label[i] for i in range(len(classifier.id2label))]
    listing = DataReport()
    multi_label = is_multi_label(classifier.config)
    raw = load_evaluation_split(spec, label_names, eval_args.split, multi_label, report=listing,
                                allow_no_event=True)  # a multi-label set of background clips: its false alarms
    split = next(iter(raw))
    before_scoring()
    scored, labels, report = _score_clips(classifier, raw[split], split, eval_args, spec)
    report.warn_skipped()  # `train` says it in its summary; here the JSON's count was all
    found = listing.found or {split: len(raw[split])}
    clips = _clips_named(spec, found, split)
    kept = kept_rows(raw, report)  # the clips scored
    report.warnings.extend(_seen_clips(eval_args.model, kept[split]))
    if not (multi_label and not any(column_values(kept[split], "label"))):  # a false-alarm set lacks them by design
        audit_missing_classes(kept, report, called=clips)  # as train's splits: accuracy over the classes present
    report.found, report.ignored, report.notes = found, listing.ignored, listing.notes + [
        f"split {name!r} ({n} files) not evaluated (--split {split})" for name, n in listing.found.items()
        if name != split]
    logger.info("%s", report.summary())
    scores = np.stack([result.scores for result in scored]).astype(np.float64)
    if multi_label:
        thresholds = decision_thresholds(thresholds_from_config(classifier.config, label_names), eval_args.aggregate)
        return ScoredSplit(split, label_names, True, multi_hot(labels, len(label_names)), scores,
                           np.zeros(0, dtype=np.int64), thresholds, report, clips)
    predicted = [label_names.index(classifier.prediction(result, top_k=1).labels[0]) for result in scored]
    return ScoredSplit(split, label_names, False, np.asarray(labels), scores, np.asarray(predicted), None, report,
                       clips)


# A report cut short by a full or read-only disk: the same command replaces it (an earlier evaluation's files are
# its own to update), so the line says to run it again rather than to delete anything.
REPORTS_NOT_WRITTEN = "the reports are incomplete; make room and run the same command again"


def _evaluate(eval_args: EvaluateArguments, spec: DataSpec) -> dict:
    _check_output_dir(eval_args.output_dir)
    scored = score_split(eval_args, spec, lambda: _warn_if_replacing_another_models(eval_args.output_dir,
                                                                                    eval_args.model))
    split, label_names, report, labels = scored.split, scored.label_names, scored.report, scored.references
    with writing_to(eval_args.output_dir, REPORTS_NOT_WRITTEN):  # a full disk named, not the pathless catch-all
        metrics = scored.write_reports(eval_args.output_dir, split, per_label_false_alarms=True)
        if scored.multi_label:
            metrics["label_thresholds"] = dict(zip(label_names, scored.thresholds.tolist()))
        metrics.update({"model": eval_args.model, "split": split, "num_clips": len(labels),
                        "num_found_files": report.found.get(split, 0), "num_skipped_files": report.num_skipped,
                        "num_ignored_files": len(report.ignored), "aggregate": eval_args.aggregate})
        if report.warnings:  # as in a training run's metrics.json
            metrics["data_warnings"] = report.warnings
        write_metrics_json(os.path.join(eval_args.output_dir, metrics_file_name(split)), metrics)
        report.save(os.path.join(eval_args.output_dir, DATA_REPORT_FILE))
    return metrics


def _clips_named(spec: DataSpec, found: dict, split: str) -> Optional[str]:
    """What warnings call the clips scored where the split's name would misname them: a folder without split
    folders is one split, which datasets names `train` ("train clips", "the train split", though no split was
    chosen); a folder's only split is its clips. None: the split's own name fits."""
    folder = spec.source.get("data_dir")
    return f"clips of {folder}" if folder and list(found) == [split] else None


def _seen_clips(model: str, clips) -> list[str]:
    """Clips the model trained on, from the record its run left (`data.clip_digests`): warned, and kept in
    the reports, since such scores measure memory rather than generalisation. A model without the record (an
    earlier version's run) says it is not checked, as stage and export do: it said so at info level, unseen."""
    warning = trained_on_warning(model, clips)
    if warning:
        logger.warning("data: %s", warning)
    return [warning] if warning else []


# Every file an evaluation writes for a split (`evaluation.report`'s table), each a mark of an earlier one: an
# evaluation killed after its confusion matrix but before its metrics file left a folder its own rerun refused.
EVALUATION_ENDINGS = (METRICS_ENDING, *REPORT_ENDINGS)


def _check_output_dir(output_dir: str) -> None:
    """The reports (data_report.json, <split>_*.json / .png) would replace a run's own: its training data's
    report and its test report, which `hfspeech stage` publishes in the model card. Any other folder of the
    user's is refused too, unless it holds an earlier evaluation (which evaluating again updates). A new folder
    named like a file is refused (`errors.refuse_folder_named_like_a_file`): the user wanted the metrics in a file."""
    refuse_folder_named_like_a_file(output_dir, "--output_dir", "the reports (per-class report, confusion matrix, "
                                    "data_report.json)", f"the metrics JSON is printed on stdout: `hfspeech evaluate "
                                    f"... > {output_dir}`")
    if os.path.isfile(os.path.join(output_dir, "config.json")):
        raise UsageError(f"--output_dir {output_dir}: a model folder; the evaluation's reports would replace its own "
                         "(data_report.json, test reports): give a folder of their own, e.g. "
                         f"{os.path.join(output_dir, 'evaluation')}")
    check_output_folder(output_dir, "--output_dir", ours=lambda name: name == DATA_REPORT_FILE or
                        name.endswith(EVALUATION_ENDINGS), earlier="an earlier evaluation")


def _warn_if_replacing_another_models(output_dir: str, model: str) -> None:
    """Evaluating again into a folder updates its reports; when they were another model's (the default
    --output_dir is shared), the first model's numbers were replaced without a word: said, naming both."""
    for name in sorted(os.listdir(output_dir)) if os.path.isdir(output_dir) else []:
        if not name.endswith(METRICS_ENDING):
            continue
        try:
            with open(os.path.join(output_dir, name), encoding="utf-8") as f:
                earlier = json.load(f).get("model")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(earlier, str) and os.path.realpath(earlier) != os.path.realpath(model):
            logger.warning("--output_dir %s: replacing the reports of an earlier evaluation of %s (%s) with %s's; "
                           "give another --output_dir to keep both", output_dir, earlier, name, model)
            return


def _preparation_for(classifier: AudioClassifier, spec: DataSpec) -> dict:
    """`spec.preparation`, without `--trim_silence` for a model that trims each clip itself, as trained: then
    one stderr line names the model's top_db (a given `--trim_top_db 20` on a model trained at 40 was dropped
    without a word)."""
    preparation = dict(spec.preparation)
    if (top_db := trim_top_db_of(classifier.config)) is not None:
        if preparation.get("trim"):
            given = preparation.get("trim_top_db", 40.0)
            print(f"warning: --trim_silence (--trim_top_db {given:g}) is not applied: the model trims each clip "
                  f"itself, as it was trained (--trim_top_db {top_db:g})", file=sys.stderr)
        preparation["trim"] = False
    return preparation


def _read_from_path(audio: dict) -> bool:
    """Whether a clip is its file on disk. A clip held as bytes is its bytes, whatever its `path` names: many Hub
    datasets name every clip `audio.wav`, and with a file of that name in the current folder every clip was
    scored as that one file (a 0.9375 model read 0.25). Training decodes the bytes; so does evaluation."""
    return audio.get("bytes") is None and bool(audio.get("path")) and os.path.isfile(audio["path"])


def _score_clips(classifier: AudioClassifier, clips, split: str, eval_args: EvaluateArguments,
                 spec: DataSpec) -> tuple[list[FileScores], list, DataReport]:
    """Every clip's scores (its windows aggregated, as `hfspeech predict` does), its label, and what was kept
    and skipped. The `FileScores` keep the windows, so that a tie of votes is broken as `predict` breaks it.

    Files on disk are read chunk by chunk, decoded ahead in a thread, their windows batched across files
    (`score_files`), so a clip of any length is scored in bounded memory and short clips in full batches.
    Clips held as bytes (a Hub or saved dataset; `_read_from_path`), and silence trimming, which needs the whole
    clip, go through `prepare_dataset` instead, which decodes each clip whole. A model trained with `--trim_silence`
    trims each clip itself, as trained (`data.samples.trimmed_as_trained`): `--trim_silence` is then not applied
    a second time.
    """
    preparation = _preparation_for(classifier, spec)
    window = dict(window_seconds=eval_args.window_seconds, hop_seconds=eval_args.hop_seconds,
                  aggregate=eval_args.aggregate)
    report = DataReport(sampling_rate=classifier.sampling_rate)
    scored, labels = [], []
    sources = column_values(clips.cast_column("audio", Audio(decode=False)), "audio")
    if not preparation.get("trim") and all(_read_from_path(audio) for audio in sources):
        paths = [audio["path"] for audio in sources]
        results = score_files(classifier, paths, progress=stderr_is_terminal(), **window)
        for row, ((_, result), label) in enumerate(zip(results, column_values(clips, "label"))):
            if isinstance(result, AudioFileError):
                if not preparation.get("skip_bad_files"):
                    raise with_skip_hint(result)
                report.skipped.setdefault(split, []).append({"path": result.path, "problem": result.problem})
                report.skipped_rows.setdefault(split, []).append(row)
            else:
                scored.append(result)
                labels.append(label)
        report.kept[split] = len(labels)
    else:
        prepared, report = prepare_dataset(DatasetDict({split: clips}), classifier.sampling_rate, **preparation)
        for clip in tqdm(prepared[split].with_format("numpy"), desc=f"evaluating {split}", unit="clip",
                         disable=not stderr_is_terminal()):
            scored.append(classifier.score_waveform(clip["input_values"], name=str(clip["path"]), **window))
            labels.append(clip["label"])
    if not labels:
        raise AudioFileError(split, "no usable audio left in this split after skipping bad files")
    return scored, labels, report
