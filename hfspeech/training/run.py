"""The fine-tuning run behind `recipes/finetune.py` and `hfspeech train`, in the order of transformers'
`run_audio_classification.py`:

parse flags -> data (labelled splits, decoded once and cached, or a stream) -> model + feature extractor ->
inputs (transforms or cached frozen features, collator) -> TrainingArguments finalised -> Trainer -> train ->
best model, feature extractor, metrics.json, data_report.json, test report (JSON + PNG), optional push.
Works as `python recipes/finetune.py ...` and `accelerate launch recipes/finetune.py ...`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from datasets import DatasetDict
from transformers import TrainingArguments, set_seed

from hfspeech.data.audio import seconds_to_samples
from hfspeech.data.augment_flags import AugmentationConfig
from hfspeech.data.clip_digests import record_training_clips, write_training_clips
from hfspeech.data.columns import column_values
from hfspeech.data.labelled import load_labelled_splits, split_method
from hfspeech.data.labels import label_names_of
from hfspeech.data.long_clips import note_long_clips
from hfspeech.data.prepare import DataReport, kept_rows, prepare_dataset
from hfspeech.data.progress_bars import datasets_bars_follow
from hfspeech.data.streaming import StreamedData, load_streamed_data
from hfspeech.data.transforms import AudioClassificationCollator, attach_transforms
from hfspeech.errors import UsageError, first_few
from hfspeech.evaluation.metrics import make_compute_metrics
from hfspeech.evaluation.report import json_ready, write_metrics_json
from hfspeech.hub.push import finish_run, hub_request
from hfspeech.models.config_json import DATA_REPORT_FILE, METRICS_FILE
from hfspeech.training.arguments import DataArguments, ModelArguments
from hfspeech.training.best_model import warn_if_best_metric_tied
from hfspeech.training.checkpoints import checkpoint_to_resume, output_dir_held, start_over
from hfspeech.training.class_weights import loss_and_sampler_options
from hfspeech.training.resume_inputs import check_resume_inputs, check_same_data, check_schedule, record_data
from hfspeech.training.same_data import check_every_process_same_data
from hfspeech.training.command_line import parse_args, parse_floats, process_state_kept, quiet_other_processes
from hfspeech.training.distributed import agreed, rank_marker_callbacks
from hfspeech.training.interrupts import InterruptsActedOn, raise_if_lost
from hfspeech.training.live_teacher import check_teacher_labels
from hfspeech.training.feature_cache import CachedHeadModel, FeatureCollator, can_cache, cached_feature_views
from hfspeech.training.finalised_arguments import finalise_training_arguments
from hfspeech.training.final_save import save_model  # whole files only, renamed in (also `training.run.save_model`)
from hfspeech.training.model_setup import build_model, check_model_flags, pretrained_feature_extractor
from hfspeech.training.multilabel import multilabel_pos_weight, tune_label_thresholds
from hfspeech.training.run_log import default_transformers_verbosity, log_to_stderr
from hfspeech.training.streaming import PassCounter, check_streaming_flags, training_stream
from hfspeech.training.shared_memory import warn_if_shared_memory_short
from hfspeech.training.soft_target_trainer import SoftTargetTrainer
from hfspeech.training.test_pass import evaluate_on_test_split, warn_tested_on_validation
from hfspeech.training.train_session import train_session
from hfspeech.training.trainer import AudioClassificationTrainer

if TYPE_CHECKING:  # imports audiomentations and scipy.signal: only a run that augments
    from hfspeech.data.augment import WaveformAugmenter

logger = logging.getLogger("hfspeech.train")

@dataclass
class RunData:
    """The run's data: prepared splits (map-style), or a training stream and prepared evaluation splits."""

    dataset: DatasetDict
    report: DataReport
    label_names: list[str]
    streamed: Optional[StreamedData] = None
    training_clips: dict = field(default_factory=dict)  # digests of train/validation clips (data.clip_digests)
    kept: Optional[DatasetDict] = None  # the undecoded splits less the skipped files (not with --streaming)

    @property
    def train_labels(self) -> list:
        """A list: iterating a datasets `Column` formats one row at a time (~1 ms a clip under load)."""
        return self.streamed.train_labels if self.streamed else column_values(self.dataset["train"], "label")


def load_data(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments,
              sampling_rate: int, teacher: Optional[str] = None) -> RunData:
    """Labelled splits decoded once at the model's rate (cached), or with `--streaming` a training stream; main
    process first (the others read its cache), its barriers run whether it fails or not (`distributed.agreed`)."""
    spec, seed = data_args.spec(), training_args.seed
    with training_args.main_process_first(desc="preparing data"):
        if data_args.streaming:  # train stays a stream; validation/test are prepared here as usual
            check_streaming_flags(data_args, spec.is_local)
            streamed = load_streamed_data(spec, sampling_rate, seed, training_args.output_dir, model_args.multi_label)
            data = RunData(streamed.evaluation, streamed.report, streamed.label_names, streamed)
        else:
            report = DataReport()
            raw = load_labelled_splits(spec, seed, multi_label=model_args.multi_label, report=report)
            # distill's teacher (folder, labels, kind), from its config.json: before the clips are decoded
            check_teacher_labels(teacher, label_names_of(raw["train"]), model_args.multi_label)
            dataset, report = prepare_dataset(raw, sampling_rate, **spec.preparation, report=report)
            kept = kept_rows(raw, report)  # not the bad files --skip_bad_files skipped
            data = RunData(dataset, report, label_names_of(dataset["train"]), None, record_training_clips(kept), kept)
    logger.info("%d classes: %s; %s", len(data.label_names), first_few(data.label_names, 20), data.report.summary())
    return data


def model_inputs(resume: Optional[str], model_args, data_args, training_args) -> tuple:
    """(data record, feature extractor, sampling rate): quick checks that may fail on one machine alone (its copies
    of the checkpoint and model), agreed before the data is prepared: a failure waited for every machine's decoding."""
    record = check_same_data(resume, model_args, data_args, training_args)  # a checkpoint on other data: refused
    check_schedule(resume, training_args)  # another learning-rate schedule: refused (`training.lr_schedule`)
    extractor = pretrained_feature_extractor(model_args)
    check_model_flags(model_args)  # a typo in --config_overrides: before the data is decoded, not after
    return record, extractor, int(extractor.sampling_rate) if extractor is not None else model_args.sampling_rate


def build_augmenter(data_args: DataArguments, sampling_rate: int, seed: int) -> Optional[WaveformAugmenter]:
    """The run's augmenter, or None where no augmentation flag is given; `data.augment` (audiomentations, scipy)
    is imported only for one."""
    snr = parse_floats(data_args.noise_snr_db)
    config = AugmentationConfig(
        noise_snr_db=snr if snr is None else (snr[0], snr[-1]),
        noise_dir=data_args.noise_dir, noise_prob=data_args.noise_prob,
        speed_factors=parse_floats(data_args.speed_factors), gain_db=data_args.gain_db,
        time_shift_seconds=data_args.time_shift_seconds, endpoint_trim_db=data_args.endpoint_trim_db,
        vtlp_warp=parse_floats(data_args.vtlp_warp), pitch_semitones=data_args.pitch_semitones,
        reverb_prob=data_args.reverb_prob)
    if not config.enabled:
        return None
    from hfspeech.data.augment import WaveformAugmenter

    return WaveformAugmenter(config, sampling_rate, seed=seed)


def uses_feature_cache(model_args: ModelArguments, model, augmenter, streamed) -> bool:
    """Whether the head trains from cached frozen features (`training.feature_cache`); a clear error where
    the run asks for both the cache and something the cache cannot do."""
    if not (model_args.freeze_base_model and model_args.cache_frozen_features) or streamed is not None:
        return False
    if not can_cache(model):
        logger.info("%s: no cached-feature head for this family; the frozen base runs every epoch", type(model).__name__)
        return False
    if augmenter is not None:
        raise UsageError("waveform augmentation needs the encoder to run on every augmented clip, but "
                         "--freeze_base_model caches its features once: drop the augmentation flags or pass "
                         "--cache_frozen_features False")
    return True


@dataclass
class TrainingInputs:
    """What the Trainer reads: a view per split, the collator, and the clip lengths for `group_by_length`."""

    views: dict
    collator: object
    train_lengths: Optional[list[int]]
    cached: bool


def training_inputs(model_args, data_args, training_args, data: RunData, model, feature_extractor,
                    sampling_rate: int) -> TrainingInputs:
    """Transformed views (crop, augmentation), a stream behind a decoding collator, or cached features."""
    crop_seconds = model.config.max_length_seconds  # Whisper's window may round the crop up
    note_long_clips(data.dataset, data.report, crop_seconds, sampling_rate, data_args.trim_silence)
    augmenter = build_augmenter(data_args, sampling_rate, training_args.seed)
    if uses_feature_cache(model_args, model, augmenter, data.streamed):
        with training_args.main_process_first(desc="encoding features"):  # the others load them from the cache
            views = cached_feature_views(model, feature_extractor, data.dataset, sampling_rate, crop_seconds,
                                         training_args.per_device_eval_batch_size, training_args.device)
        return TrainingInputs(views, FeatureCollator(len(data.label_names)), None, cached=True)
    views = attach_transforms(data.dataset, sampling_rate, crop_seconds, augmenter, training_args.seed)
    collator = AudioClassificationCollator(feature_extractor, num_labels=len(data.label_names))
    max_samples = seconds_to_samples(crop_seconds, sampling_rate) if crop_seconds else None
    warn_if_shared_memory_short(training_args, max_samples)
    if data.streamed is None:
        lengths = [min(n, max_samples or n) for n in column_values(data.dataset["train"], "length")]
        return TrainingInputs(views, collator, lengths, cached=False)
    views["train"] = training_stream(data.streamed.train, data.streamed.exact_train_rows,
                                     training_args.dataloader_num_workers)
    collator = data.streamed.collator(collator, sampling_rate, max_samples, augmenter, training_args.seed,
                                      data_args.spec().preparation)
    return TrainingInputs(views, collator, None, cached=False)


@dataclass
class TrainingSetup:
    """Everything `run_training` needs after preparation: the Trainer and what it was built from."""

    trainer: AudioClassificationTrainer
    views: dict
    label_names: list[str]
    report: DataReport
    resume_from_checkpoint: Optional[str]
    streamed: Optional[StreamedData] = None  # --streaming: the training stream (hfspeech.data.streaming)
    training_clips: dict = field(default_factory=dict)  # written beside the model for `hfspeech evaluate`
    decoded: Optional[DatasetDict] = None  # the prepared splits: the test pass reads their clips' lengths and paths
    start: Callable[[], None] = lambda: None  # --overwrite_output_dir's fresh start and the run's record, called last


def setup_training(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments,
                   teacher: Optional[str] = None) -> TrainingSetup:
    """Data prepared, model built and frozen as asked, Trainer ready: no training step taken yet."""
    log_to_stderr()
    default_transformers_verbosity()
    quiet_other_processes(training_args)  # several processes: the main one's log alone
    set_seed(training_args.seed)
    resume = checkpoint_to_resume(training_args)
    record, extractor, sampling_rate = agreed(lambda: model_inputs(resume, model_args, data_args, training_args))
    data = agreed(lambda: load_data(model_args, data_args, training_args, sampling_rate, teacher))  # a machine's copy
    if training_args.world_size > 1:  # each machine prepared its own copy: the same rows, or no process trains
        check_every_process_same_data(data.label_names, data.kept, data.dataset)
    model, feature_extractor = agreed(lambda: build_model(  # each machine's copy of the weights (one cut short)
        model_args, data.label_names, extractor, data_args.max_length_seconds, data_args.trimmed_at()))
    agreed(lambda: check_resume_inputs(resume, model.config, training_args))  # other labels or model: refused
    input_paths = {"--model_name_or_path": model_args.model_name_or_path, "--teacher": teacher}  # never removed:

    def start() -> None:  # every input accepted (trainer built, teacher attached): the earlier run goes (review R4)
        agreed(lambda: start_over(training_args, input_paths))
        record_data(record, training_args, split_method(data.report.notes, data_args.group_column), resume)
    inputs = agreed(lambda: training_inputs(  # each machine's --noise_dir, and its disk for the feature cache
        model_args, data_args, training_args, data, model, feature_extractor, sampling_rate))
    num_labels = len(data.label_names)
    pos_weight = multilabel_pos_weight(data_args, data.train_labels, data.label_names) if model_args.multi_label else None
    finalise_training_arguments(training_args, has_validation="validation" in inputs.views,
                                multi_label=model_args.multi_label, streamed=data.streamed is not None,
                                streamed_rows=data.streamed.num_train_rows if data.streamed else None)
    trainer = SoftTargetTrainer(  # AudioClassificationTrainer, plus mixup and distillation when asked for
        mixup_alpha=data_args.mixup_alpha,
        model=CachedHeadModel(model) if inputs.cached else model, args=training_args,
        train_dataset=inputs.views["train"], eval_dataset=inputs.views.get("validation"),
        data_collator=inputs.collator, processing_class=feature_extractor,
        compute_metrics=make_compute_metrics(num_labels, model.config),
        head_learning_rate=model_args.head_learning_rate, layerwise_lr_decay=model_args.layerwise_lr_decay,
        train_lengths=inputs.train_lengths,
        callbacks=[InterruptsActedOn(), *rank_marker_callbacks(), *([PassCounter()] if data.streamed else [])],
        **loss_and_sampler_options(data_args, data.train_labels, num_labels, model_args.multi_label, pos_weight),
    )
    return TrainingSetup(trainer, inputs.views, data.label_names, data.report, resume, data.streamed,
                         data.training_clips, data.dataset, start)


def run_training(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments,
                 before_training=None, after_saving=None, teacher: Optional[str] = None) -> dict:
    """Train, keep the best model, evaluate it on the test split; returns the metrics written to metrics.json.
    `before_training(setup)`, when given, adjusts the set-up trainer first (`training.distill` adds its `teacher`);
    `after_saving()` runs last, with the folder still held (the command line traces the TorchScript twin).
    Its log set-up, transformers' verbosity and accelerate's state last for the run (`process_state_kept`)."""
    request = agreed(lambda: hub_request(training_args))  # read before the arguments drop the token (hfspeech.hub)
    with process_state_kept(), output_dir_held(training_args):  # one run at a time in a folder (training.checkpoints)
        with datasets_bars_follow(training_args.disable_tqdm):  # no map/save bars in a log (data.progress_bars)
            setup = setup_training(model_args, data_args, training_args, teacher)
            if before_training is not None:
                before_training(setup)
            setup.start()  # nothing of the earlier run goes before every refusal has had its turn
        trainer, views, label_names, report = setup.trainer, setup.views, setup.label_names, setup.report
        train_metrics = train_session(trainer, setup.resume_from_checkpoint)  # none of its own if it took no step
        warn_if_best_metric_tied(trainer)
        if trainer.is_multi_label and data_args.tune_thresholds:  # before saving: config.json keeps the thresholds
            tune_label_thresholds(trainer, views.get("validation"), label_names)
        save_model(trainer)  # the best model when load_best_model_at_end, with the feature extractor (final_save)
        metrics = {f"train_{k}" if not k.startswith("train") else k: v for k, v in train_metrics.items()}
        if "validation" in views:
            metrics.update(trainer.evaluate(metric_key_prefix="eval"))
        metrics.update(evaluate_on_test_split(trainer, views, label_names, setup.decoded, data_args.spec(),
                                              model_args.trust_remote_code))
        if metrics.get("test_split") == "validation":
            warn_tested_on_validation(report, trainer.args.load_best_model_at_end,
                                      trainer.is_multi_label and data_args.tune_thresholds)
        if setup.streamed is not None:
            setup.streamed.add_skipped_files(report)
        metrics.update({"num_labels": len(label_names), "labels": label_names,
                        **{f"num_{name}_clips": n for name, n in report.kept.items()},
                        "num_skipped_files": report.num_skipped})
        if report.warnings:  # leaks and degenerate splits (data.split_audit): the test numbers carry them
            metrics["data_warnings"] = report.warnings
        if trainer.is_world_process_zero():
            report.save(os.path.join(training_args.output_dir, DATA_REPORT_FILE))
            if setup.training_clips:  # not with --streaming: the stream's clips are not listed
                write_training_clips(setup.training_clips, training_args.output_dir)
            write_metrics_json(os.path.join(training_args.output_dir, METRICS_FILE), metrics)
            trainer.save_metrics("all", json_ready(metrics), combined=False)  # all_results.json, where transformers' examples put them
            trainer.save_state()
            logger.info("done: %s", {k: v for k, v in metrics.items() if k.startswith(("test_", "eval_accuracy", "eval_map"))})
            raise_if_lost()  # a Ctrl-C dropped since the last step: before the push and the trace, not after them
            finish_run(model_args, data_args, training_args, request)
            if after_saving is not None:
                raise_if_lost()
                after_saving()
        return metrics


def main(argv: Optional[Sequence[str]] = None) -> dict:
    with process_state_kept():  # the parse's ACCELERATE_* variables too
        return run_training(*parse_args(argv))
