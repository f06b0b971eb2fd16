"""`hfspeech cross-validate`'s flags: train's, and `--num_folds`, parsed by a parser of its own before train's so
that `hfspeech train` (which would take it and do nothing) never sees it.

Kept apart from `training.cross_validation` (numpy, datasets): `--help` and a mistyped flag need only the parsers.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Optional, Sequence

from hfspeech.parser_rules import flag_action
from hfspeech.training.command_line import (RecipeArgumentParser, exit_with_help_if_asked, parse_args,
                                            recipe_parser, refuse_mistyped_flags)
from hfspeech.training.flag_files import expand_args_files


@dataclass
class CrossValidationArguments:
    num_folds: Optional[int] = field(default=None, metadata={
        "help": "Deal the groups into this many folds of about equal clip counts (fold-1 ..., their groups in "
                "cross_validation.json). Default: one per group (leave-one-group-out), refused above 20 groups."})


def parse_cross_validation_args(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> tuple:
    """(CrossValidationArguments, ModelArguments, DataArguments, TrainingArguments), as `distill` parses its own
    flags: `--num_folds` is not one of `hfspeech train`'s, which would take it and do nothing."""
    help_parser = recipe_parser(CrossValidationArguments, prog=prog)
    argv = list(sys.argv[1:] if argv is None else argv)
    exit_with_help_if_asked(argv, help_parser)
    argv = expand_args_files(argv, help_parser)  # a --num_folds in an --args_file too
    refuse_mistyped_flags(help_parser, argv)
    argv = folds_flag_in_full(help_parser, argv)  # `--num_fold 3`, accepted as train's are
    folds_args, rest = RecipeArgumentParser(CrossValidationArguments, allow_abbrev=False).parse_args_into_dataclasses(
        args=argv, return_remaining_strings=True)
    return (folds_args, *parse_args(rest, help_parser._option_string_actions, help_parser.prog))


def folds_flag_in_full(parser, argv: list[str]) -> list[str]:
    """`argv` with an abbreviation of `--num_folds` written in full (`--num_fold 3`, let through as train's are, was
    "not used"): the folds' own parser takes none (one of train's flags would be taken for it). A flag's value that
    starts like one (`--run_name --num_fold`) is left as it is: that flag's to take."""
    written, value_due = [], False
    for token in argv:
        name, equals, value = token.partition("=")
        action = flag_action(parser, name) if token.startswith("--") and not value_due else None
        written.append(f"--num_folds{equals}{value}" if action is not None and action.dest == "num_folds" else token)
        value_due = action is not None and not equals and action.nargs != 0
    return written
