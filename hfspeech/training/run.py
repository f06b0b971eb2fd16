"""The fine-tuning run behind `recipes/finetune.py` and `hfspeech train`.

load data -> labels -> splits -> decode once (cached) -> model + feature extractor -> Trainer ->
best model, feature extractor, metrics.json, data_report.json, test confusion matrix (JSON + PNG).
Works as `python recipes/finetune.py ...` and `accelerate launch recipes/finetune.py ...`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import transformers
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModelForAudioClassification,
    HfArgumentParser,
    TrainingArguments,
    set_seed,
)
from datasets import DatasetDict

from hfspeech.data.augment import AugmentationConfig, WaveformAugmenter
from hfspeech.data.groups import attach_groups, group_disjoint_splits
from hfspeech.data.loading import DataError, encode_labels, label_names_of, load_audio_dataset
from hfspeech.data.prepare import DataReport, prepare_dataset
from hfspeech.data.splits import make_splits
from hfspeech.data.streaming import (PassCounter, StreamedData, configure_streaming_training,
                                     load_streamed_data)
from hfspeech.data.transforms import AudioClassificationCollator, attach_transforms
from hfspeech.errors import UsageError
from hfspeech.evaluation.metrics import make_compute_metrics
from hfspeech.evaluation.report import write_evaluation_report
from hfspeech.hub.push import finish_run, take_over_hub_push
from hfspeech.models import BASELINE_MODELS  # (registers the baselines with the Auto classes)
from hfspeech.models.loading import pretrained_errors
from hfspeech.models.whisper import is_whisper, prepare_whisper_classifier
from hfspeech.models.whisper.pretrained import resolve_pretrained
from hfspeech.training.arguments import DataArguments, ModelArguments, parse_floats
from hfspeech.training.checkpoints import checkpoint_to_resume, resume_errors
from hfspeech.training.distributed import rank_marker_callbacks
from hfspeech.training.feature_cache import CachedHeadModel, FeatureCollator, can_cache, cached_feature_views
from hfspeech.training.optim import freeze
from hfspeech.training.multilabel import (prepare_multilabel_training, tune_label_thresholds,
                                          write_multilabel_test_report)
from hfspeech.training.soft_target_trainer import SoftTargetTrainer
from hfspeech.training.trainer import AudioClassificationTrainer, inverse_frequency_weights

logger = logging.getLogger("hfspeech.train")

# Defaults of TrainingArguments that suit audio classification; any of them can be overridden.
TRAINING_DEFAULTS = dict(
    output_dir="runs/hfspeech",
    eval_strategy="epoch",
    save_strategy="epoch",
    save_total_limit=2,
    load_best_model_at_end=True,
    metric_for_best_model="accuracy",
    logging_strategy="epoch",
    learning_rate=1e-3,
    warmup_ratio=0.1,
    num_train_epochs=10,
    per_device_train_batch_size=32,
    per_device_eval_batch_size=64,
    remove_unused_columns=False,  # the columns the transforms need are not model inputs
    report_to="none",
)


def parse_args(argv: Optional[Sequence[str]] = None) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    defaults = dict(TRAINING_DEFAULTS)
    defaults["dataloader_pin_memory"] = torch.cuda.is_available()
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        defaults["bf16"] = True  # picked up by itself on GPUs that have it; --bf16 False turns it off
    if not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Several processes and no GPU (`accelerate launch --multi_gpu --num_processes N`, torchrun): join them
        # in one gloo DDP group on CPU. Without use_cpu, accelerate leaves each process training on its own.
        defaults["use_cpu"] = True
    parser.set_defaults(**defaults)
    argv = list(sys.argv[1:] if argv is None else argv)
    # --args_file FILE (repeatable): flags kept in a file, as the recipes under recipes/ are; flags on
    # the command line come after them, so they win. transformers skips a missing file silently.
    for flag, value in zip(argv, argv[1:]):
        if flag == "--args_file" and not os.path.isfile(value):
            raise ArgsFileNotFoundError(f"{value}: --args_file not found")
    try:  # TrainingArguments checks its flags in __post_init__ (strategies, precision ...) with a ValueError
        if len(argv) == 1 and argv[0].endswith(".json"):
            return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
        return parser.parse_args_into_dataclasses(args=argv, args_file_flag="--args_file", look_for_args_file=False)
    except (ValueError, OSError) as error:
        raise UsageError(f"invalid training flags: {error}") from error


class ArgsFileNotFoundError(UsageError, FileNotFoundError):
    """`--args_file` names a file that does not exist (transformers would skip it without a word)."""


def build_model(model_args: ModelArguments, label_names: Sequence[str], feature_extractor=None,
                max_length_seconds: Optional[float] = None):
    """A new baseline from `model_type`, or a pretrained checkpoint with a head for these labels.

    `feature_extractor`: the checkpoint's, when the caller has loaded it already (else it is loaded here).
    Freezing and feature-extractor options are applied here, so whatever is built is ready to train.
    `max_length_seconds` (the crop) is saved as `config.max_length_seconds`, the window predict uses; a
    Whisper encoder is cut to it, rounded up to whole seconds (`models.whisper`).
    """
    label2id = {name: i for i, name in enumerate(label_names)}
    id2label = {i: name for i, name in enumerate(label_names)}
    try:
        overrides = json.loads(model_args.config_overrides) if model_args.config_overrides else {}
    except json.JSONDecodeError as error:
        raise UsageError(f"--config_overrides: not a JSON object ({error})") from None
    if not isinstance(overrides, dict):
        raise UsageError(f"--config_overrides: not a JSON object ({model_args.config_overrides!r})")
    if model_args.use_weighted_layer_sum is not None:
        overrides["use_weighted_layer_sum"] = model_args.use_weighted_layer_sum
    if model_args.problem_type:  # recorded in config.json: the loss, the metrics and serving follow it
        overrides["problem_type"] = model_args.problem_type
    if model_args.model_name_or_path:
        hub = _hub_options(model_args)
        checkpoint = resolve_pretrained(model_args.model_name_or_path)  # a short name of `hfspeech pretrained`
        with pretrained_errors(checkpoint):
            config = AutoConfig.from_pretrained(
                checkpoint, num_labels=len(label_names), label2id=label2id, id2label=id2label,
                finetuning_task="audio-classification", **overrides, **hub,
            )
            model = AutoModelForAudioClassification.from_pretrained(
                checkpoint, config=config, ignore_mismatched_sizes=model_args.ignore_mismatched_sizes, **hub,
            )
            if feature_extractor is None:
                feature_extractor = AutoFeatureExtractor.from_pretrained(checkpoint, **hub)
    else:
        if model_args.model_type not in BASELINE_MODELS:
            raise UsageError(f"unknown --model_type '{model_args.model_type}'; choose from {sorted(BASELINE_MODELS)}")
        spec = BASELINE_MODELS[model_args.model_type]
        try:  # the config checks its values (pooling, feature type, sizes) with a ValueError
            config = spec.config_class(
                num_labels=len(label_names), label2id=label2id, id2label=id2label,
                sampling_rate=model_args.sampling_rate, **overrides,
            )
        except (ValueError, TypeError) as error:
            raise UsageError(f"--config_overrides / --model_type {model_args.model_type}: {error}") from error
        model = spec.model_class(config)
        feature_extractor = spec.feature_extractor_class(sampling_rate=config.sampling_rate)
    if is_whisper(model.config):
        feature_extractor, max_length_seconds = prepare_whisper_classifier(model, feature_extractor, max_length_seconds)
    model.config.max_length_seconds = max_length_seconds
    if model_args.return_attention_mask is not None:
        feature_extractor.return_attention_mask = model_args.return_attention_mask
    freeze(model, feature_encoder=model_args.freeze_feature_encoder, base_model=model_args.freeze_base_model)
    return model, feature_extractor


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


def build_augmenter(data_args: DataArguments, sampling_rate: int, seed: int) -> Optional[WaveformAugmenter]:
    snr = parse_floats(data_args.noise_snr_db)
    config = AugmentationConfig(
        noise_snr_db=snr if snr is None else (snr[0], snr[-1]),
        noise_dir=data_args.noise_dir,
        noise_prob=data_args.noise_prob,
        speed_factors=parse_floats(data_args.speed_factors),
        gain_db=data_args.gain_db,
        time_shift_seconds=data_args.time_shift_seconds,
        vtlp_warp=parse_floats(data_args.vtlp_warp), pitch_semitones=data_args.pitch_semitones,
        reverb_prob=data_args.reverb_prob,
    )
    return WaveformAugmenter(config, sampling_rate, seed=seed) if config.enabled else None


def load_and_prepare(data_args: DataArguments, sampling_rate: int, seed: int, label_names=None,
                     multi_label: bool = False):
    """Data from any layout, with labels encoded, splits made and audio decoded once."""
    report = DataReport()
    raw = load_audio_dataset(**data_args.source(), report=report)
    if label_names is None and "train" not in raw:
        raise DataError(f"training needs a 'train' split; the data has {list(raw)} (give --train_file, "
                        "or an audio folder without split folders, or a dataset with a train split)")
    if data_args.group_column:  # group-disjoint splits, and a warning where the given ones share groups
        raw = attach_groups(raw, data_args.source(), data_args.group_column)
    raw = encode_labels(raw, label_names, multi_label=multi_label, separator=data_args.label_separator)
    if "train" in raw:
        raw = (group_disjoint_splits if data_args.group_column else make_splits)(
            raw, data_args.validation_split_percentage / 100, data_args.test_split_percentage / 100, seed)
    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples,
              "test": data_args.max_eval_samples}
    for name, limit in limits.items():
        if name in raw and limit is not None and limit < len(raw[name]):
            report.limited[name] = len(raw[name]) - limit
            raw[name] = raw[name].shuffle(seed=seed).select(range(limit))
    return prepare_dataset(raw, sampling_rate, **data_args.preparation(), report=report)


@dataclass
class TrainingSetup:
    """Everything `run_training` needs after preparation: the Trainer and what it was built from."""

    trainer: AudioClassificationTrainer
    views: DatasetDict
    label_names: list[str]
    report: DataReport
    resume_from_checkpoint: Optional[str]
    streamed: Optional[StreamedData] = None  # --streaming: the training stream (hfspeech.data.streaming)


def setup_training(model_args: ModelArguments, data_args: DataArguments,
                   training_args: TrainingArguments) -> TrainingSetup:
    """Data prepared, model built and frozen as asked, Trainer ready: no training step taken yet."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    set_seed(training_args.seed)

    resume = checkpoint_to_resume(training_args)

    # Labels come first (they size the head), so read them from the training data before building the model.
    # A pretrained checkpoint's extractor sets the rate the data is decoded at; it is loaded once, here.
    pretrained_extractor = None
    if model_args.model_name_or_path:
        checkpoint = resolve_pretrained(model_args.model_name_or_path)
        with pretrained_errors(checkpoint):
            pretrained_extractor = AutoFeatureExtractor.from_pretrained(checkpoint, **_hub_options(model_args))
    sampling_rate = int(pretrained_extractor.sampling_rate) if pretrained_extractor is not None else model_args.sampling_rate
    streamed = None
    with training_args.main_process_first(desc="preparing data"):
        if data_args.streaming:  # train stays a stream; validation/test are prepared here as usual
            streamed = load_streamed_data(data_args, sampling_rate, training_args.seed, training_args.output_dir,
                                          multi_label=model_args.multi_label)
            dataset, report = streamed.evaluation, streamed.report
        else:
            dataset, report = load_and_prepare(data_args, sampling_rate, training_args.seed,
                                               multi_label=model_args.multi_label)
    label_names = streamed.label_names if streamed else label_names_of(dataset["train"])
    logger.info("%d classes: %s; %s", len(label_names), label_names, report.summary())

    model, feature_extractor = build_model(model_args, label_names, pretrained_extractor, data_args.max_length_seconds)
    crop_seconds = model.config.max_length_seconds  # Whisper's window may round the crop up
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("%s: %d parameters, %d trainable", type(model).__name__,
                sum(p.numel() for p in model.parameters()), trainable)
    augmenter = build_augmenter(data_args, sampling_rate, training_args.seed)
    cached = uses_feature_cache(model_args, model, augmenter, streamed)
    if cached:  # the frozen base runs once per clip; the Trainer trains the head from its cached output
        views = cached_feature_views(model, feature_extractor, dataset, sampling_rate, crop_seconds,
                                     training_args.per_device_eval_batch_size)
    else:
        views = attach_transforms(dataset, sampling_rate, crop_seconds, augmenter, training_args.seed)

    train_labels = streamed.train_labels if streamed else dataset["train"]["label"]
    class_weights = sample_weights = pos_weight = None
    if model_args.multi_label:
        pos_weight = prepare_multilabel_training(data_args, training_args, train_labels, label_names)
    elif data_args.class_weighted_loss:
        class_weights = inverse_frequency_weights(train_labels, len(label_names))
    if data_args.oversample and not model_args.multi_label:
        per_class = inverse_frequency_weights(train_labels, len(label_names))
        sample_weights = per_class[np.asarray(train_labels)]
    max_samples = int(crop_seconds * sampling_rate) if crop_seconds else None
    train_lengths = None if streamed or cached else [min(n, max_samples or n) for n in dataset["train"]["length"]]
    collator = FeatureCollator(len(label_names)) if cached else \
        AudioClassificationCollator(feature_extractor, num_labels=len(label_names))
    if streamed:
        views["train"] = streamed.training_stream()
        collator = streamed.collator(collator, sampling_rate, max_samples, augmenter, training_args.seed, data_args)
        configure_streaming_training(training_args, streamed.num_train_rows)

    if "validation" not in views:
        training_args.eval_strategy = "no"
        training_args.load_best_model_at_end = False
    trainer = SoftTargetTrainer(  # AudioClassificationTrainer, plus mixup and distillation when asked for
        mixup_alpha=data_args.mixup_alpha,
        model=CachedHeadModel(model) if cached else model,
        args=training_args,
        train_dataset=views["train"],
        eval_dataset=views.get("validation"),
        data_collator=collator,
        processing_class=feature_extractor,
        compute_metrics=make_compute_metrics(len(label_names), model.config),
        class_weights=class_weights,
        sample_weights=sample_weights,
        head_learning_rate=model_args.head_learning_rate,
        layerwise_lr_decay=model_args.layerwise_lr_decay,
        train_lengths=train_lengths,
        pos_weight=pos_weight,
        callbacks=rank_marker_callbacks() + ([PassCounter()] if streamed else []),
    )
    return TrainingSetup(trainer, views, label_names, report, resume, streamed)


def run_training(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments,
                 before_training=None) -> dict:
    """Train, keep the best model, evaluate it on the test split; returns the metrics written to metrics.json.
    `before_training(setup)`, when given, adjusts the set-up trainer first (`training.distill` adds its teacher)."""
    hub_request = take_over_hub_push(training_args)  # staged and pushed by hfspeech.hub, never by Trainer
    setup = setup_training(model_args, data_args, training_args)
    if before_training is not None:
        before_training(setup)
    trainer, views, label_names, report = setup.trainer, setup.views, setup.label_names, setup.report
    with resume_errors(setup.resume_from_checkpoint):
        train_result = trainer.train(resume_from_checkpoint=setup.resume_from_checkpoint)
    multi_label = trainer.is_multi_label
    if multi_label and data_args.tune_thresholds:  # before saving: config.json keeps the thresholds
        tune_label_thresholds(trainer, views.get("validation"), label_names)
    save_model(trainer)  # the best model when load_best_model_at_end, with the feature extractor
    metrics = {f"train_{k}" if not k.startswith("train") else k: v for k, v in train_result.metrics.items()}
    eval_split = "validation" if "validation" in views else None
    if eval_split:
        metrics.update(trainer.evaluate(metric_key_prefix="eval"))

    test_split = "test" if "test" in views else eval_split
    if test_split:
        prediction = trainer.predict(views[test_split], metric_key_prefix="test")
        predictions = np.argmax(prediction.predictions, axis=-1)
        if multi_label and trainer.is_world_process_zero():
            test_metrics = write_multilabel_test_report(training_args.output_dir, prediction, trainer.model.config,
                                                        label_names, prefix="test")
            metrics.update({f"test_{k}": v for k, v in test_metrics.items()})
            metrics["label_thresholds"] = trainer.model.config.label_thresholds
        elif trainer.is_world_process_zero():
            test_metrics = write_evaluation_report(
                training_args.output_dir, predictions, prediction.label_ids, label_names, prefix="test"
            )
            metrics.update({f"test_{k}": v for k, v in test_metrics.items()})
        metrics["test_split"] = test_split
    if setup.streamed is not None:
        setup.streamed.add_skipped_files(report)
    metrics.update({"num_labels": len(label_names), "labels": label_names,
                    **{f"num_{name}_clips": n for name, n in report.kept.items()},
                    "num_skipped_files": report.num_skipped})
    if trainer.is_world_process_zero():
        report.save(os.path.join(training_args.output_dir, "data_report.json"))
        with open(os.path.join(training_args.output_dir, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2)
        trainer.save_state()
        logger.info("done: %s", {k: v for k, v in metrics.items() if k.startswith(("test_", "eval_accuracy", "eval_map"))})
        finish_run(model_args, data_args, training_args, hub_request)
    return metrics


def save_model(trainer: AudioClassificationTrainer) -> None:
    """`trainer.save_model()`, except that a head trained from cached features is saved with its base."""
    if not isinstance(trainer.model, CachedHeadModel):
        trainer.save_model()
    elif trainer.is_world_process_zero():
        trainer.model.model.save_pretrained(trainer.args.output_dir)
        trainer.processing_class.save_pretrained(trainer.args.output_dir)


def _hub_options(model_args: ModelArguments) -> dict:
    return dict(cache_dir=model_args.cache_dir, revision=model_args.model_revision,
                trust_remote_code=model_args.trust_remote_code)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    return run_training(*parse_args(argv))
