"""The values of the recipe's flags, checked as the command line is parsed, before any data is read: a number that
would crash deep in the run or be quietly changed is one line naming the flag (`training.arguments`' dataclasses and
`training.command_line.parse_args` call these).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from hfspeech.data.split_names import refuse_without_dataset
from hfspeech.errors import UsageError

if TYPE_CHECKING:
    from hfspeech.training.arguments import DataArguments


def check_data_flags(data_args: "DataArguments") -> None:
    """`DataArguments`' own checks (its `__post_init__`). Numbers that would otherwise crash deep in the run (a
    negative crop, no training clip) or be quietly changed (a held-out share of 150%, capped at 50%), or a label
    separator that cannot split."""
    if data_args.max_length_seconds is not None and not data_args.max_length_seconds >= 0:
        raise UsageError(f"--max_length_seconds must be >= 0 (0: no crop), got {data_args.max_length_seconds}")
    for name in ("max_train_samples", "max_eval_samples"):
        if getattr(data_args, name) is not None and getattr(data_args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(data_args, name)}")
    shares = (data_args.validation_split_percentage, data_args.test_split_percentage)
    if not (all(0 <= share < 100 for share in shares) and sum(shares) < 100):
        raise UsageError("--validation_split_percentage and --test_split_percentage must each be in [0, 100) "
                         f"and leave clips to train on, got {shares[0]} and {shares[1]}")
    if not data_args.label_separator:  # str.split("") raised a bare ValueError deep in label encoding
        raise UsageError("--label_separator must not be empty (default ';', as in 'dog;siren')")
    from hfspeech.data.augment import check_augmentation_flags  # here: --help does not import audiomentations

    check_augmentation_flags(data_args)  # before any data is read, not after decoding it (or as a traceback)
    refuse_without_dataset(data_args.given_split_names(), data_args.dataset_name)  # before run_inputs.json is written


def check_layerwise_decay(decay: Optional[float], frozen_base: bool) -> None:
    """0 or a negative decay gave the lower layers no or negative learning rates without a word; with a frozen base
    only the head trains, and the refusal came after every clip's features were cached, naming an inner class."""
    if decay is not None and not 0 < decay <= 1:
        raise UsageError(f"--layerwise_lr_decay must be in (0, 1] (0.9: each layer down learns 0.9x slower), "
                         f"got {decay}")
    if decay is not None and frozen_base:
        raise UsageError("--layerwise_lr_decay: with --freeze_base_model only the head trains (at "
                         "--head_learning_rate); leave one of them out")
