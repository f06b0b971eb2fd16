"""`hfspeech train`, `distill`, `cross-validate` and `evaluate`: the fine-tuning recipe, its distillation and
cross-validation variants, and a saved model's metrics on a data set.

Both parse with transformers' `HfArgumentParser` (flags `--data_dir`, `--output_dir` ..., which also accepts
the dashed spellings), so the flags are those of the dataclasses in `hfspeech.training.arguments`.
"""

from __future__ import annotations

import json


def train(argv: list[str]) -> int:
    from hfspeech.training.run import main as train_main

    train_main(argv)
    return 0


def evaluate(argv: list[str]) -> int:
    from transformers import HfArgumentParser

    from hfspeech.errors import UsageError
    from hfspeech.evaluation.evaluate_model import EvaluateArguments, evaluate_model
    from hfspeech.training.arguments import DataArguments

    try:
        eval_args, data_args = HfArgumentParser((EvaluateArguments, DataArguments)).parse_args_into_dataclasses(
            args=list(argv))
    except ValueError as error:
        raise UsageError(f"invalid evaluate flags: {error}") from error
    metrics = evaluate_model(eval_args, data_args.spec())
    print(json.dumps(metrics, indent=2))
    return 0


def distill(argv: list[str]) -> int:
    from hfspeech.training.distill import main as distill_main

    distill_main(argv)
    return 0


def cross_validate(argv: list[str]) -> int:
    from hfspeech.training.cross_validation import main as cross_validation_main

    cross_validation_main(argv)
    return 0
