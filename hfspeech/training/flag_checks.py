"""The values of the recipe's flags, checked as the command line is parsed, before any data is read: a number that
would crash deep in the run or be quietly changed is one line naming the flag (`training.arguments`' dataclasses and
`training.command_line.parse_args` call these; `training.class_weights` refuses both imbalance remedies for the
Python API too). Imports no transformers: `check_reporting` reads its integrations when it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from hfspeech.data.augment_flags import check_augmentation_flags
from hfspeech.data.split_names import refuse_without_dataset
from hfspeech.errors import UsageError

if TYPE_CHECKING:
    from transformers import TrainingArguments

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


def check_training_values(args: "TrainingArguments", given: set[str]) -> None:
    """Values TrainingArguments takes that training cannot use: a batch size or accumulation of 0 and a negative
    learning rate failed with tracebacks from torch and the Trainer; 0 epochs saved a model never trained;
    `--do_train False` trained all the same (the recipe always trains)."""
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not args.learning_rate >= 0:
        raise UsageError(f"--learning_rate must be >= 0, got {args.learning_rate}")
    if args.max_steps <= 0 and not args.num_train_epochs > 0:
        raise UsageError(f"--num_train_epochs must be above 0 (or give --max_steps), got {args.num_train_epochs}: "
                         "the run would save a model it never trained")
    if "do_train" in given and not args.do_train:
        raise UsageError("--do_train False: this recipe always trains; `hfspeech evaluate --model DIR` scores a "
                         "saved model without training")


def refuse_both_imbalance_remedies(data_args: "DataArguments") -> None:
    """Each of `--class_weighted_loss` and `--oversample` evens the classes' shares of the loss: together they
    reversed the imbalance (10:4:2:1 data: the rarest class took 0.54 of the loss, the commonest 0.05). Refused as
    the flags are read, before any data is decoded, and where the Trainer's options are built (the Python API)."""
    if data_args.class_weighted_loss and data_args.oversample:
        raise UsageError("--class_weighted_loss and --oversample: each balances the classes on its own; together "
                         "they reverse the imbalance (the rarest class gets the largest share of the loss): give one")


def check_label_smoothing(factor: float, multi_label: bool) -> None:
    """1.5 trained silently with a negative weight on the true class (and was a torch traceback with mixup); a
    multi-label model trains on sigmoids, which softmax label smoothing does not apply to: it was ignored."""
    if not 0 <= factor < 1:
        raise UsageError(f"--label_smoothing_factor must be in [0, 1), got {factor}")
    if factor and multi_label:
        raise UsageError("--label_smoothing_factor: smooths a softmax target; a multi-label model trains on one "
                         "sigmoid per label, where it would not be applied; leave it out")


def check_reporting(args: "TrainingArguments") -> None:
    """`--report_to wandb` (or tensorboard ...) where the package is not installed failed at the Trainer's start
    with a RuntimeError traceback, an unknown name with a ValueError one."""
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    for name in args.report_to or []:
        if name not in INTEGRATION_TO_CALLBACK:
            raise UsageError(f"--report_to {name}: not an integration of transformers; choose from "
                             f"{sorted(INTEGRATION_TO_CALLBACK)}, all or none")
        if name not in get_available_reporting_integrations():
            raise UsageError(f"--report_to {name}: {name} is not installed here; install it, or pass --report_to none")
