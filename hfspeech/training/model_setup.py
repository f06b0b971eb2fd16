"""The model a run trains: a new baseline from `--model_type`, or a pretrained checkpoint with a new head.

Labels come first (they size the head), so the run reads them from the training data before building the
model; a pretrained checkpoint's feature extractor sets the rate the data is decoded at, so it is loaded
before the data (`pretrained_feature_extractor`) and handed to `build_model`.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

import torch
from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

from hfspeech.data.samples import TRIM_CONFIG_ATTRIBUTE
from hfspeech.errors import UsageError
from hfspeech.models import BASELINE_MODELS  # (registers the baselines with the Auto classes)
from hfspeech.models.library_notes import hide_mismatched_masks_note
from hfspeech.models.inputs import extractor_window_seconds
from hfspeech.models.label_words import spoken_forms
from hfspeech.models.loading import hub_unreachable, is_local_path, new_head_note_hidden, pretrained_errors
from hfspeech.models.problem_types import SINGLE_LABEL
from hfspeech.models.scores import id_ordered_labels
from hfspeech.models.short_batches import pad_short_batches
from hfspeech.models.whisper import is_whisper, prepare_whisper_classifier
from hfspeech.models.whisper.configuration_clip_pooling import clip_pooling_config
from hfspeech.models.whisper.configuration_label_scoring import MODEL_TYPE as LABEL_SCORING_TYPE, label_scoring_config
from hfspeech.models.whisper.modeling_clip_pooling import WhisperClipPoolingForAudioClassification
from hfspeech.models.whisper.pretrained import resolve_pretrained
from hfspeech.training.arguments import ModelArguments
from hfspeech.training.config_overrides import apply_requested_spec_augment, check_override_keys, config_overrides
from hfspeech.training.head_rows import keep_head_rows_with_their_labels
from hfspeech.training.optim import freeze

logger = logging.getLogger("hfspeech.train")
DEFAULT_SAMPLING_RATE = ModelArguments.__dataclass_fields__["sampling_rate"].default


def pretrained_feature_extractor(model_args: ModelArguments):
    """The checkpoint's feature extractor (its sampling rate is the data's), or None for a new baseline."""
    if not model_args.model_name_or_path:
        return None
    checkpoint = resolve_pretrained(model_args.model_name_or_path)  # a short name of `hfspeech pretrained`
    with pretrained_errors(checkpoint):
        extractor = AutoFeatureExtractor.from_pretrained(checkpoint, **_hub_options(model_args))
    rate = getattr(extractor, "sampling_rate", None)
    if rate and model_args.sampling_rate not in (DEFAULT_SAMPLING_RATE, rate):  # given, and not what is used
        raise UsageError(f"--sampling_rate {model_args.sampling_rate}: {model_args.model_name_or_path} takes audio at "
                         f"{rate} Hz (its feature extractor's sampling_rate), and the data is resampled to that; "
                         "drop --sampling_rate (it sets the rate of a new baseline)")
    return extractor


def build_model(model_args: ModelArguments, label_names: Sequence[str], feature_extractor=None,
                max_length_seconds: Optional[float] = None, trim_top_db: Optional[float] = None):
    """A new baseline from `model_type`, or a pretrained checkpoint with a head for these labels.

    `feature_extractor`: the checkpoint's, when the caller has loaded it already (else it is loaded here).
    Freezing and feature-extractor options are applied here, so whatever is built is ready to train.
    `max_length_seconds` (the crop) is saved as `config.max_length_seconds`, the window predict uses; a
    Whisper encoder is cut to it, rounded up to whole seconds (`models.whisper`). `trim_top_db` (`--trim_silence`'s
    `--trim_top_db`, None when untrimmed) is saved too (`data.samples.TRIM_CONFIG_ATTRIBUTE`): inference trims as
    training did, or a clip whose speech sits at the start of a long take is scored on its silent middle.
    """
    config_values = dict(num_labels=len(label_names), label2id={name: i for i, name in enumerate(label_names)},
                         id2label=dict(enumerate(label_names)), **config_overrides(model_args))
    if len(label_names) > 1:  # else set by the first training step alone: null where a rerun took none
        config_values.setdefault("problem_type", SINGLE_LABEL)
    hide_mismatched_masks_note()  # a WavLM's first padded batch in training and evaluation
    if model_args.model_name_or_path:
        model, feature_extractor = _pretrained(model_args, config_values, feature_extractor)
    else:
        model, feature_extractor = _baseline(model_args, config_values)
    if is_whisper(model.config):
        asked = max_length_seconds
        try:
            feature_extractor, max_length_seconds = prepare_whisper_classifier(
                model, feature_extractor, max_length_seconds, model_args.whisper_window_seconds)
        except ValueError as error:
            raise UsageError(f"--whisper_window_seconds: {error}") from None
        if asked and asked > max_length_seconds:  # the checkpoint's positions end there (30 s for OpenAI's)
            logger.warning("--max_length_seconds %s: Whisper's encoder hears at most %s s; clips are cropped to that",
                           asked, max_length_seconds)
    elif whisper_only := [flag for flag, value in (("--pool_clip_frames", model_args.pool_clip_frames),
                                                   ("--whisper_window_seconds", model_args.whisper_window_seconds),
                                                   ("--score_label_words", model_args.score_label_words)) if value]:
        raise UsageError(f"{' and '.join(whisper_only)}: for Whisper checkpoints (--model_name_or_path); "
                         f"this model is model_type {model.config.model_type!r}")
    if model.config.model_type == "audio-spectrogram-transformer":
        max_length_seconds = ast_crop_seconds(feature_extractor, max_length_seconds)
    model.config.max_length_seconds = max_length_seconds
    vars(model.config).pop(TRIM_CONFIG_ATTRIBUTE, None)  # a fine-tuned trimmed checkpoint's: not this run's setting
    if trim_top_db is not None:  # absent when untrimmed: configs as before
        setattr(model.config, TRIM_CONFIG_ATTRIBUTE, float(trim_top_db))
    if model_args.return_attention_mask is not None:
        _check_model_takes_a_mask(model, model_args.return_attention_mask)
        feature_extractor.return_attention_mask = model_args.return_attention_mask
    freeze(model, feature_encoder=model_args.freeze_feature_encoder, base_model=model_args.freeze_base_model)
    pad_short_batches(model)  # clips under 25 ms, SpecAugment on batches under 0.2 s: padded, not a crash
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("%s: %d parameters, %d trainable", type(model).__name__,
                sum(p.numel() for p in model.parameters()), trainable)
    return model, feature_extractor


def ast_crop_seconds(feature_extractor, max_length_seconds: Optional[float]) -> float:
    """The crop of an AST run: at most what its feature extractor keeps. It cuts every clip's log-mel frames (25 ms,
    every 10 ms) at `max_length` (1,024: 10.25 s for the AudioSet checkpoints) without a word, so a longer crop
    (or none) trained on the first 10.25 s of each clip and windowed long files in `predict` by the longer crop,
    the rest of every window unheard."""
    longest = extractor_window_seconds(feature_extractor)  # (the window `predict` takes for an outside AST, too)
    if longest is None or (max_length_seconds and max_length_seconds <= longest):
        return max_length_seconds
    if max_length_seconds:
        logger.warning("--max_length_seconds %s: AST hears at most %s s (its feature extractor's max_length, %d "
                       "frames); clips are cropped to %s s", max_length_seconds, longest,
                       feature_extractor.max_length, longest)
    return longest


def _check_model_takes_a_mask(model, return_attention_mask: bool) -> None:
    """`--return_attention_mask True` for a model whose forward takes no mask (transformers' Whisper classifier)
    was a TypeError at the first step, or an AttributeError in the frozen-feature cache."""
    import inspect

    if return_attention_mask and "attention_mask" not in inspect.signature(model.forward).parameters:
        hint = "; --pool_clip_frames pools over the clip's own frames" if is_whisper(model.config) else ""
        raise UsageError(f"--return_attention_mask True: {type(model).__name__} takes no attention mask{hint}")


def _pretrained(model_args: ModelArguments, config_values: dict, feature_extractor=None):
    hub = _hub_options(model_args)
    checkpoint = resolve_pretrained(model_args.model_name_or_path)
    with pretrained_errors(checkpoint), new_head_note_hidden():  # this run trains the new head
        saved = AutoConfig.from_pretrained(checkpoint, **hub)  # read once: the checkpoint's labels, then the run's
        saved_labels = id_ordered_labels(saved)
        # what from_pretrained(checkpoint, **config_values) builds; with the Hub commit to fetch the weights at
        values = {**saved.to_dict(), "_commit_hash": saved._commit_hash}  # (`to_dict` leaves the commit out)
        config = type(saved).from_dict(values, finetuning_task="audio-classification", **config_values)
        check_override_keys(model_args, config)  # from_pretrained drops the keys the config does not have
        note_problem_type_change(model_args, saved.problem_type, config.problem_type)
        apply_requested_spec_augment(model_args, config)
        if model_args.score_label_words or config.model_type == LABEL_SCORING_TYPE:
            model = _label_scorer(model_args, checkpoint, config, hub)
        elif model_args.pool_clip_frames and config.model_type == "whisper":
            model = _with_new_weights_set(*WhisperClipPoolingForAudioClassification.from_pretrained(
                checkpoint, config=clip_pooling_config(config), output_loading_info=True,
                ignore_mismatched_sizes=model_args.ignore_mismatched_sizes, **hub))
        else:
            model = _with_new_weights_set(*AutoModelForAudioClassification.from_pretrained(
                checkpoint, config=config, output_loading_info=True,
                ignore_mismatched_sizes=model_args.ignore_mismatched_sizes, **hub))
        if feature_extractor is None:
            feature_extractor = AutoFeatureExtractor.from_pretrained(checkpoint, **hub)
    if config.model_type != LABEL_SCORING_TYPE:  # (a label scorer checks its labels' words itself)
        keep_head_rows_with_their_labels(model, saved_labels, id_ordered_labels(model.config))
    return model, feature_extractor


def note_problem_type_change(model_args: ModelArguments, saved: Optional[str], trained: Optional[str]) -> None:
    """A multi-label checkpoint fine-tuned on single-label data became single-label without a word (audit 33)."""
    if saved and trained and saved != trained:
        how = "--problem_type" if model_args.problem_type else "the default; --problem_type keeps the checkpoint's"
        logger.warning("--model_name_or_path %s: a %s checkpoint; this run trains it as %s (%s)",
                       model_args.model_name_or_path, saved, trained, how)


def _with_new_weights_set(model, loading_info: dict):
    """New parameters that transformers' `_init_weights` of Wav2Vec2 and WavLM (4.57) leaves as allocated, set as
    the model's `__init__` makes them: whatever memory held became the start (measured: [2e29, 3e-41, 3e27],
    [-5e23, 5e-41, 8e28], NaN). `layer_weights` (`--use_weighted_layer_sum`, which no SSL checkpoint has; XLS-R's
    `recipes/language_id`): 1/layers each, not a softmax saturated on one layer at random that never learns.
    `masked_spec_embed` (SpecAugment's mask vector, absent from a checkpoint saved without masking): uniform in
    [0, 1), not values of 1e35 that turned the loss into NaN."""
    with torch.no_grad():
        for name in loading_info.get("missing_keys", ()):
            if name.endswith("layer_weights"):
                parameter = model.get_parameter(name)
                parameter.fill_(1.0 / parameter.numel())
            elif name.endswith("masked_spec_embed"):
                model.get_parameter(name).uniform_()
    return model


def _label_scorer(model_args: ModelArguments, checkpoint: str, config, hub: dict):
    """A Whisper checkpoint (its decoder and tokenizer too) as `WhisperForLabelScoring` for the run's labels,
    or a saved label scorer to train on, if it scores the run's labels (its words were tokenized when it was
    made: a saved run has no tokenizer)."""
    from transformers import AutoTokenizer

    from hfspeech.models.whisper.modeling_label_scoring import WhisperForLabelScoring

    if config.model_type not in ("whisper", LABEL_SCORING_TYPE):
        raise UsageError(f"--score_label_words needs a Whisper speech-to-text checkpoint; {checkpoint} is "
                         f"model_type {config.model_type!r}")
    unsupported = [flag for flag, on in (("--freeze_base_model", model_args.freeze_base_model),
                                          ("--pool_clip_frames", model_args.pool_clip_frames),
                                          ("--use_weighted_layer_sum", model_args.use_weighted_layer_sum),
                                          ("--problem_type multi_label_classification", model_args.multi_label)) if on]
    if unsupported:
        raise UsageError(f"--score_label_words trains the whole model on single labels; drop {', '.join(unsupported)}")
    labels = [config.id2label[index] for index in range(config.num_labels)]
    if config.model_type == LABEL_SCORING_TYPE:
        if [spoken_forms(label) for label in labels] != config.label_forms:
            raise UsageError(f"{checkpoint} scores the words {[forms[0].strip() for forms in config.label_forms]}"
                             f"; this data's labels are {labels}: start from the Whisper checkpoint instead")
        return WhisperForLabelScoring.from_pretrained(checkpoint, config=config, **hub)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint, **hub)
    return WhisperForLabelScoring.from_pretrained(checkpoint, config=label_scoring_config(config, tokenizer, labels),
                                                  **hub)


def check_model_flags(model_args: ModelArguments) -> None:
    """`--model_type` and `--config_overrides` (keys and values) checked before any data is read: a typo in them
    was found only once every clip had been decoded. The labels are not known yet; two stand in for them."""
    if not model_args.model_name_or_path:
        _baseline_config(model_args, {"num_labels": 2, **config_overrides(model_args)})
        return
    checkpoint = resolve_pretrained(model_args.model_name_or_path)
    with pretrained_errors(checkpoint):
        check_override_keys(model_args, AutoConfig.from_pretrained(checkpoint, **_hub_options(model_args)))


def _baseline_config(model_args: ModelArguments, config_values: dict):
    if model_args.model_type not in BASELINE_MODELS:
        raise UsageError(f"unknown --model_type '{model_args.model_type}'; choose from {sorted(BASELINE_MODELS)}")
    spec = BASELINE_MODELS[model_args.model_type]
    check_override_keys(model_args, spec.config_class())
    try:  # the config checks its values (pooling, feature type, sizes) with a ValueError
        return spec.config_class(sampling_rate=model_args.sampling_rate, **config_values)
    except (ValueError, TypeError) as error:
        raise UsageError(f"--config_overrides / --model_type {model_args.model_type}: {error}") from error


def _baseline(model_args: ModelArguments, config_values: dict):
    config = _baseline_config(model_args, config_values)
    spec = BASELINE_MODELS[model_args.model_type]
    return spec.model_class(config), spec.feature_extractor_class(sampling_rate=config.sampling_rate)


def _hub_options(model_args: ModelArguments) -> dict:
    """With the Hub out of reach (and HF_HUB_OFFLINE not set), a Hub id in the cache is read from there at once,
    as `hfspeech predict` reads it: huggingface_hub would retry every file first (minutes)."""
    checkpoint = resolve_pretrained(model_args.model_name_or_path)
    cache_only = bool(checkpoint) and not is_local_path(checkpoint) and hub_unreachable()
    return dict(cache_dir=model_args.cache_dir, revision=model_args.model_revision,
                trust_remote_code=model_args.trust_remote_code, local_files_only=cache_only)
