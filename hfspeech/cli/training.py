"""`hfspeech train` and `hfspeech evaluate`: the fine-tuning recipe and a saved model's metrics on a data set.

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
    from hfspeech.evaluation.evaluate_model import evaluate_model, parse_evaluate_args

    eval_args, data_args = parse_evaluate_args(argv)
    metrics = evaluate_model(eval_args, data_args)
    print(json.dumps(metrics, indent=2))
    return 0
