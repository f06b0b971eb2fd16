"""`--config_overrides`: a JSON object of config values for the model being built, checked before it is built.

Values a flag, the data or hfspeech sets are refused (they met the flag's value as a Python "got multiple values for
keyword argument", drew a wrong "did you mean", or lost to the flag without a word), a key the config lacks is a typo
named with its nearest keys, and mask probabilities switch on SpecAugment where a checkpoint has it off. Imports only
`errors`, `training.arguments` and the name of the trimming attribute (`data.samples`).
"""

from __future__ import annotations

import json
import logging

from hfspeech.data.samples import TRIM_CONFIG_ATTRIBUTE
from hfspeech.errors import UsageError, did_you_mean
from hfspeech.training.arguments import ModelArguments

logger = logging.getLogger("hfspeech.train")

# Config values a flag, the data or hfspeech sets: in `--config_overrides` they met the flag's value ("CNNAudioConfig()
# got multiple values for keyword argument 'sampling_rate'"), drew a wrong "did you mean ['max_length']?", or lost to
# the flag without a word (`--use_weighted_layer_sum True` over `{"use_weighted_layer_sum": false}`; a trimmed
# checkpoint's `trim_silence_top_db`, replaced by the run's own; Whisper's window, recut by the flag, its positional
# rows newly drawn at random where the override shrank them; `model_type`, a class attribute, ignored).
FLAGS_THAT_ARE_CONFIG_VALUES = ("sampling_rate", "max_length_seconds", "problem_type", "use_weighted_layer_sum")
FLAG_OWNED_CONFIG_VALUES = {
    **{key: f"is set by --{key}: give it there" for key in FLAGS_THAT_ARE_CONFIG_VALUES},
    TRIM_CONFIG_ATTRIBUTE: "is set by --trim_silence (at --trim_top_db): give them there",
    "max_source_positions": "is Whisper's window, set by --whisper_window_seconds: give it there",
    "finetuning_task": "is set by hfspeech (audio-classification)",
    "model_type": "is the kind of model (--model_type, or the checkpoint's), which an override left as it was",
    **dict.fromkeys(("num_labels", "id2label", "label2id"), "comes from the data's labels")}


def user_overrides(model_args: ModelArguments) -> dict:
    """`--config_overrides` as given: a JSON object, or a one-line error."""
    try:
        overrides = json.loads(model_args.config_overrides) if model_args.config_overrides else {}
    except json.JSONDecodeError as error:
        raise UsageError(f"--config_overrides: not a JSON object ({error})") from None
    if not isinstance(overrides, dict):
        raise UsageError(f"--config_overrides: not a JSON object ({model_args.config_overrides!r})")
    for key, way_out in FLAG_OWNED_CONFIG_VALUES.items():
        if key in overrides:  # a Python "got multiple values for keyword argument", or a wrong "did you mean"
            raise UsageError(f"--config_overrides: {key!r} {way_out}, not in --config_overrides")
    return overrides


def config_overrides(model_args: ModelArguments) -> dict:
    """`--config_overrides` with the flags that are config values too."""
    overrides = user_overrides(model_args)
    if model_args.use_weighted_layer_sum is not None:
        overrides["use_weighted_layer_sum"] = model_args.use_weighted_layer_sum
    if model_args.problem_type:  # recorded in config.json: the loss, the metrics and serving follow it
        overrides["problem_type"] = model_args.problem_type
    return overrides


def check_override_keys(model_args: ModelArguments, config) -> None:
    """A `--config_overrides` key that `config` (of the model being built, without the overrides) lacks is a
    typo: transformers would keep it unused or drop it without a word, and the run would train another model."""
    unknown = [key for key in user_overrides(model_args) if not hasattr(config, key)]
    if unknown:
        raise UsageError(f"--config_overrides: unknown key(s) {unknown} for model_type {config.model_type!r}"
                         + did_you_mean(unknown, config.to_dict()))
    if model_args.use_weighted_layer_sum and not hasattr(config, "use_weighted_layer_sum"):  # (AST, the baselines)
        raise UsageError(f"--use_weighted_layer_sum: model_type {config.model_type!r} has no weighted sum of its "
                         "layers to learn (the flag would change nothing); leave the flag out")


MASK_PROBABILITIES = ("mask_time_prob", "mask_feature_prob")


def apply_requested_spec_augment(model_args: ModelArguments, config) -> None:
    """`--config_overrides '{"mask_time_prob": 0.3}'` for a checkpoint whose `apply_spec_augment` is off (Whisper's
    default) trained with no masking at all, silently. A mask probability above 0 asks for SpecAugment, and the flag
    is the only way to give it, so it is switched on, with a warning; `"apply_spec_augment": false` keeps it off."""
    overrides = user_overrides(model_args)
    asked = [key for key in MASK_PROBABILITIES if isinstance(overrides.get(key), (int, float)) and overrides[key] > 0]
    if asked and "apply_spec_augment" not in overrides and getattr(config, "apply_spec_augment", True) is False:
        config.apply_spec_augment = True
        logger.warning("--config_overrides %s: model_type %r masks only with apply_spec_augment, off in this "
                       "checkpoint; turned on (give \"apply_spec_augment\": false to train without it)",
                       " and ".join(asked), config.model_type)
