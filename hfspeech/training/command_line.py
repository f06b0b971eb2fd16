"""The recipe's command line: flags (and `--args_file` files, or one JSON file) into `ModelArguments`,
`DataArguments` and `TrainingArguments` with defaults that suit audio classification, and flag text into
numbers. `training.run` trains from what this returns; `training.distill` adds its own dataclass in front.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

import torch
from transformers import HfArgumentParser, TrainingArguments

from hfspeech.errors import UsageError
from hfspeech.training.arguments import DataArguments, ModelArguments

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


def recipe_parser(*more: type) -> HfArgumentParser:
    """The recipe's `HfArgumentParser` (`more` dataclasses first, as `hfspeech distill` adds its own) with
    TrainingArguments' defaults for audio classification, and CUDA, bf16 or a CPU process group picked up."""
    parser = HfArgumentParser((*more, ModelArguments, DataArguments, TrainingArguments))
    defaults = dict(TRAINING_DEFAULTS)
    defaults["dataloader_pin_memory"] = torch.cuda.is_available()
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        defaults["bf16"] = True  # picked up by itself on GPUs that have it; --bf16 False turns it off
    if not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Several processes and no GPU (`accelerate launch --multi_gpu --num_processes N`, torchrun): join them
        # in one gloo DDP group on CPU. Without use_cpu, accelerate leaves each process training on its own.
        defaults["use_cpu"] = True
    parser.set_defaults(**defaults)
    # transformers' pre-parser takes --args_file off the command line before this parser reads it: declared
    # here for --help alone (SUPPRESS: never in the parsed namespace).
    parser.add_argument("--args_file", action="append", default=argparse.SUPPRESS, metavar="FILE",
                        help="a file of flags (repeatable); the flags on the command line come after, and win")
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    parser = recipe_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    exit_with_help_if_asked(argv, parser)
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


def exit_with_help_if_asked(argv: Sequence[str], parser: HfArgumentParser) -> None:
    """`--help` lists every flag of `parser` and exits: transformers' own `--args_file` pre-parser would answer
    it first, with a help that lists `--args_file` alone."""
    if "-h" in argv or "--help" in argv:
        parser.parse_args(["--help"])


class ArgsFileNotFoundError(UsageError, FileNotFoundError):
    """`--args_file` names a file that does not exist (transformers would skip it without a word)."""


def parse_floats(text: Optional[str]) -> Optional[tuple[float, ...]]:
    """'5,30' -> (5.0, 30.0); None stays None. A clear error for anything else."""
    if text is None or str(text).strip() == "":
        return None
    try:
        return tuple(float(part) for part in str(text).split(","))
    except ValueError as error:
        raise UsageError(f"expected comma-separated numbers, got '{text}'") from error
