"""The recipe's command line: flags (and `--args_file` files of flags, JSON or YAML) into `ModelArguments`,
`DataArguments` and `TrainingArguments` with defaults that suit audio classification, and flag text into
numbers. `training.run` trains from what this returns; `training.distill` adds its own dataclass in front.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from typing import Iterator, Optional, Sequence

import torch
import transformers
from transformers import HfArgumentParser, TrainingArguments

from hfspeech.data.system_libraries import missing_library
from hfspeech.errors import UsageError
from hfspeech.parser_rules import AbbreviationsOfOneFlag, home_expanded, refuse_unknown_flags
from hfspeech.training.accelerate_environment import accelerate_state_kept, parse_into_dataclasses
from hfspeech.training.arguments import DataArguments, ModelArguments
from hfspeech.training.flag_checks import (check_label_smoothing, check_layerwise_decay, check_reporting,
                                          check_training_values, refuse_both_imbalance_remedies)
from hfspeech.training.flag_files import ARGS_FILE_FLAGS, expand_args_files
from hfspeech.training.interrupts import interrupts_kept
from hfspeech.training.progress_output import default_bars_for_log

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
    log_level_replica="error",  # several processes: the log is the main process's (transformers': warning)
)


# The recipe's flags for what run_audio_classification.py and the other commands spell otherwise (as
# `parser_rules.FLAG_EQUIVALENTS`: the flag that must be there, what to give): the nearest name misled
# (`--eval_file` was told "--test_file", `--device` "--use_mps_device", `--batch_size` "--auto_find_batch_size") or
# there was none.
TRAINING_FLAG_EQUIVALENTS = {
    "--eval_file": [("--validation_file", "give --validation_file, the validation manifest run_audio_classification.py "
                                          "calls --eval_file")],
    "--config_name": [("--config_overrides", "hfspeech has none: the config is --model_name_or_path's, or a new "
                                             "--model_type baseline's; change its values with --config_overrides")],
    "--feature_extractor_name": [("--model_name_or_path", "hfspeech has none: the feature extractor is "
                                  "--model_name_or_path's own; a new baseline's is part of the model (--sampling_rate, "
                                  "--config_overrides)")],
    "--attention_mask": [("--return_attention_mask", "give --return_attention_mask, run_audio_classification.py's "
                                                     "--attention_mask")],
    "--device": [("--use_cpu", "training takes a GPU when there is one; give --use_cpu for the CPU (or set "
                               "CUDA_VISIBLE_DEVICES)")],
    "--batch_size": [("--per_device_train_batch_size", "give --per_device_train_batch_size (and "
                                                       "--per_device_eval_batch_size for evaluation)")],
    **dict.fromkeys(["--window_seconds", "--clip_seconds"], [("--max_length_seconds", "give --max_length_seconds, the "
                                                              "clip length training crops to")]),
    "--top_k": [("--trim_top_db", "this command ranks no labels: --top_k is predict's, stream's and serve's")],
    "--repo_id": [("--hub_model_id", "give --push_to_hub --hub_model_id NAME (or `hfspeech push RUN --repo_id NAME` "
                                     "after the run)")],
    "--eval_dir": [("--split", "give --data_dir, the folder evaluate scores (export and stage call it --eval_dir)")],
    "--model_dir": [("--model_name_or_path", "give --model_name_or_path (a saved model folder or Hub id)")],
}


class RecipeArgumentParser(AbbreviationsOfOneFlag, HfArgumentParser):
    """`HfArgumentParser` whose argparse mistakes (a bad choice, a value of the wrong type) are one line:
    argparse prints the usage of every TrainingArguments flag, about 170 lines, before the error."""

    flag_equivalents = TRAINING_FLAG_EQUIVALENTS  # `parser_rules.refuse_unknown_flags`' hints

    def error(self, message: str):
        """`--model` (evaluate's and predict's name) fits three flags; argparse listed them, not which to give."""
        if re.match(r"ambiguous option: --model(=\S*)? could match", message):
            message = ("--model: give --model_name_or_path (a saved model or Hub id) or --model_type (a baseline "
                       "from scratch)")
        if message.startswith("the following arguments are required"):  # as every other usage error ends
            message += f"; `{self.prog} --help` lists them"
        raise UsageError(message)


def recipe_parser(*more: type, prog: Optional[str] = None) -> HfArgumentParser:
    """The recipe's `HfArgumentParser` (`more` dataclasses first, as `hfspeech distill` adds its own) with
    TrainingArguments' defaults for audio classification, and CUDA, bf16 or a CPU process group picked up.
    `prog`: the command its help and its mistakes name (`hfspeech train`; None: the script's name)."""
    parser = RecipeArgumentParser((*more, ModelArguments, DataArguments, TrainingArguments), prog=prog)
    defaults = dict(TRAINING_DEFAULTS)
    defaults["dataloader_pin_memory"] = torch.cuda.is_available()
    # Native bf16 only (Ampere and later): torch says yes on a T4 or V100 too, which emulate it slower than fp32.
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
        defaults["bf16"] = True  # picked up by itself on GPUs that have it; --bf16 False turns it off
    if not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Several processes and no GPU (`accelerate launch --multi_gpu --num_processes N`, torchrun): join them
        # in one gloo DDP group on CPU. Without use_cpu, accelerate leaves each process training on its own.
        defaults["use_cpu"] = True
    parser.set_defaults(**defaults)
    # Read by `expand_args_files` before parsing; declared here for --help alone (SUPPRESS: never parsed).
    parser.add_argument("--args_file", action="append", default=argparse.SUPPRESS, metavar="FILE",
                        help="a file of flags (repeatable): `--flag value` text, or a .json/.yaml mapping of flag "
                        "names to values; the flags on the command line come after, and win (default: none)")
    for action in parser._actions:  # argparse reads `%` as a format: "10% slower" ("% s") printed argparse's dict
        action.help = re.sub(r"%(\([^)]*\)[-#0 +]*\d*(?:\.\d+)?[a-zA-Z]|%)?", lambda found: found[0] if found[1]
                             else "%%", action.help) if action.help else action.help  # `%(default).0s`, `%%` kept
    return parser


def parse_args(argv: Optional[Sequence[str]] = None, also_known: Sequence[str] = (), prog: Optional[str] = None
               ) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    """The recipe's three dataclasses, for every entry point (`hfspeech train`, `recipes/finetune.py`, `accelerate
    launch`, `training.run.main`); a mistyped flag is named first, with the nearest of the recipe's flags and
    `also_known` (what a caller such as distill parsed before); `prog` as in `recipe_parser`."""
    parser = recipe_parser(prog=prog)
    argv = list(sys.argv[1:] if argv is None else argv)
    exit_with_help_if_asked(argv, parser)
    argv = home_expanded(parser, expand_args_files(argv, parser))  # a typo in a file is named with the file
    refuse_mistyped_flags(parser, argv, also_known)
    given = given_flags(argv)
    best_model_follows_strategies(parser, argv, given)
    try:  # TrainingArguments checks its flags in __post_init__ (strategies, precision ...) with a ValueError
        model_args, data_args, training_args = parse_into_dataclasses(parser, argv)  # no earlier run's bf16
    except UsageError:
        raise
    except (ValueError, OSError) as error:
        if missing_library(error):  # soundfile imported while the flags are checked: the CLI names libsndfile1
            raise
        raise UsageError(f"invalid training flags: {explain(error, given)}") from error
    check_training_values(training_args, given)
    check_label_smoothing(training_args.label_smoothing_factor, model_args.multi_label)
    if not model_args.multi_label:  # (multi-label runs ignore both flags)
        refuse_both_imbalance_remedies(data_args)
    check_layerwise_decay(model_args.layerwise_lr_decay, model_args.freeze_base_model)
    check_reporting(training_args)
    default_bars_for_log(training_args, given)  # no tqdm bars in a log file
    return model_args, data_args, training_args


def exit_with_help_if_asked(argv: Sequence[str], parser: HfArgumentParser) -> None:
    """`--help` lists every flag of `parser` and exits: transformers' own `--args_file` pre-parser would answer
    it first, with a help that lists `--args_file` alone."""
    if "-h" in argv or "--help" in argv:
        parser.parse_args(["--help"])


def refuse_mistyped_flags(parser: HfArgumentParser, argv: Sequence[str], also_known: Sequence[str] = ()) -> None:
    """A mistyped flag named in the words of every hfspeech command (`parser_rules.refuse_unknown_flags`), before any
    other problem: transformers said "Some specified arguments are not used by the HfArgumentParser: [...]", and only
    after TrainingArguments' own checks. Here, where the parser is, so that every entry point says it the same way.
    Every flag of `parser` (TrainingArguments' too), `--args_file` in both spellings and `also_known` stay valid."""
    refuse_unknown_flags(parser, list(argv), options=[*parser._option_string_actions, *ARGS_FILE_FLAGS, *also_known])


def given_flags(argv: Sequence[str]) -> set[str]:
    """The names of the flags given (`--eval-strategy=no` -> eval_strategy), after the flag files' expansion."""
    return {token[2:].partition("=")[0].replace("-", "_") for token in argv if token.startswith("--")}


def best_model_follows_strategies(parser: HfArgumentParser, argv: Sequence[str], given: set[str]) -> None:
    """hfspeech keeps the best model by default (`load_best_model_at_end`, off in transformers), which needs an
    evaluation and a checkpoint at the same points. `--eval_strategy no` or `--save_strategy no` without
    `--load_best_model_at_end` turns it off, as in transformers, instead of failing on a default the user
    never set: the run keeps its last model. Other mismatches stay an error (`explain`)."""
    if "load_best_model_at_end" in given or not {"eval_strategy", "save_strategy"} & given:
        return
    namespace, _ = parser.parse_known_args(argv)
    if "no" in (str(namespace.eval_strategy), str(namespace.save_strategy)):
        parser.set_defaults(load_best_model_at_end=False)


def explain(error: BaseException, given: set[str]) -> str:
    """transformers' message in one line, with the way out where it is about one of hfspeech's defaults."""
    message = " ".join(str(error).split())
    if "requires the save and eval strategy to match" in message and "load_best_model_at_end" not in given:
        message += (" (--load_best_model_at_end is on by default here: give --eval_strategy and --save_strategy "
                    "the same value, or pass --load_best_model_at_end False)")
    if "support bf16/gpu" in message and not torch.cuda.is_available():
        message += " (--bf16: there is no CUDA GPU here; --bf16 --use_cpu trains with CPU autocast)"
    return message


def quiet_other_processes(args: TrainingArguments) -> None:
    """In a run of several processes, hfspeech's own log lines (classes, model size, warnings) come from the
    main process alone; the others log at `--log_level_replica` (default here: error), as transformers' do."""
    if not args.should_log:
        from transformers.training_args import trainer_log_levels

        level = trainer_log_levels[args.log_level_replica]
        logging.getLogger("hfspeech").setLevel(level if level >= 0 else logging.WARNING)  # "passive": -1


_OPEN_SCOPES = [0]  # how many `process_state_kept` scopes are open now: the outermost puts the state back


@contextlib.contextmanager
def process_state_kept() -> Iterator[None]:
    """What a training command sets for the whole process, in effect while it runs and put back when it ends (an
    error or Ctrl-C included): the root logger's level and handler (`setup_training`'s `basicConfig`: left, every
    library's INFO lines printed, datasets' warnings twice), the "hfspeech" logger's level, transformers' verbosity
    and accelerate's variables and state, which a notebook calling `main(["train", ...])` kept. Nested scopes
    (cross-validate's folds, `main` around `run_training`) leave it to the outermost. A Ctrl-C or SIGTERM that
    Python drops in a finalizer (accelerate collects garbage as each training loop starts) stops the run at its next
    step all the same (`training.interrupts`)."""
    if _OPEN_SCOPES[0]:
        yield
        return
    root, hfspeech_logger = logging.getLogger(), logging.getLogger("hfspeech")
    had_handlers, root_level, hfspeech_level = bool(root.handlers), root.level, hfspeech_logger.level
    verbosity = transformers.utils.logging.get_verbosity()
    _OPEN_SCOPES[0] += 1
    try:
        with accelerate_state_kept(), interrupts_kept():
            yield
    finally:
        _OPEN_SCOPES[0] -= 1
        if not had_handlers and root.handlers:  # `basicConfig` adds a handler only to a root without any: the first
            root.removeHandler(root.handlers[0])  # is the set-up's; any after it (a callback's, a thread's) stays
        root.setLevel(root_level)
        hfspeech_logger.setLevel(hfspeech_level)
        transformers.utils.logging.set_verbosity(verbosity)


def parse_floats(text: Optional[str]) -> Optional[tuple[float, ...]]:
    """'5,30' -> (5.0, 30.0); None stays None. A clear error for anything else."""
    if text is None or str(text).strip() == "":
        return None
    try:
        return tuple(float(part) for part in str(text).split(","))
    except ValueError as error:
        raise UsageError(f"expected comma-separated numbers, got '{text}'") from error
