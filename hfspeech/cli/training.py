"""`hfspeech train`, `distill`, `cross-validate`, `average` and `evaluate`: the fine-tuning recipe, its
distillation and cross-validation variants, the weight average of several runs, and a saved model's metrics
on a data set.

Both parse with transformers' `HfArgumentParser` (flags `--data_dir`, `--output_dir` ..., which also accepts
the dashed spellings), so the flags are those of the dataclasses in `hfspeech.training.arguments`.
"""

from __future__ import annotations

import argparse
import json


def train(argv: list[str]) -> int:
    """The recipe (`recipes/finetune.py` is this command). Its parser names a mistyped flag first; it is given the
    command's name for its help (`usage: hfspeech train`) and its mistakes (`hfspeech train --help` lists them).
    `training.run` (datasets, evaluate, audiomentations, scipy: seconds) is imported after the parse, so `--help`
    and a mistyped flag wait only for what the flags need (torch and transformers, for TrainingArguments)."""
    from hfspeech.training.command_line import parse_args, process_state_kept

    with process_state_kept():  # from the parse on: its ACCELERATE_* variables are put back too
        model_args, data_args, training_args = parse_args(argv, prog="hfspeech train")
        from hfspeech.training.run import run_training

        run_training(model_args, data_args, training_args, after_saving=trace_for_fast_start(training_args))
    return 0


def trace_for_fast_start(training_args):
    """A baseline's finished run also gets a TorchScript copy in `OUTPUT_DIR/torchscript`, which `hfspeech
    predict OUTPUT_DIR` runs while it matches the run's weights: it starts without importing transformers
    (`hfspeech.export.write_run_twin`). Done here, not in `training`: exporting is a stage of its own. Returned
    as run_training's `after_saving`, so it is traced while the run still holds its folder
    (`training.checkpoints.output_dir_held`): a second run into it started meanwhile is refused."""
    def trace() -> None:
        if training_args.should_save:
            from hfspeech.export.torchscript_export import write_run_twin

            write_run_twin(training_args.output_dir)
    return trace


def evaluate(argv: list[str]) -> int:
    """The scoring (datasets, the data stack, batch inference: seconds) is imported after the parse, as `train`'s
    run is: `--help` and a mistyped flag wait only for the flags' own modules."""
    eval_args, data_args = parse_evaluate_args(argv)
    refuse_training_only_flags(data_args)
    from hfspeech.evaluation.evaluate_model import evaluate_model
    from hfspeech.evaluation.report import json_ready

    metrics = evaluate_model(eval_args, data_args.spec())
    print(json.dumps(json_ready(metrics), indent=2))  # an undefined score is null, as in the metrics file
    return 0


def parse_evaluate_args(argv: list[str]):
    """(EvaluateArguments, DataArguments). Mistakes read as the other commands' (`error: argument --x: ...`,
    `error: --x: ...`, `error: unknown flag(s) [...]`), not behind an "invalid evaluate flags:" of their own;
    a mistyped flag is named before argparse would call `--model` missing."""
    from hfspeech.errors import UsageError
    from hfspeech.parser_rules import home_expanded, refuse_unknown_flags
    from hfspeech.evaluation.arguments import EvaluateArguments
    from hfspeech.training.arguments import DataArguments
    from hfspeech.training.command_line import RecipeArgumentParser  # a mistake is one line, not the usage

    parser = RecipeArgumentParser((EvaluateArguments, DataArguments), prog="hfspeech evaluate")
    hide_training_only_flags(parser)
    shown = [option for action in parser._actions if action.help != argparse.SUPPRESS
             for option in action.option_strings]
    refuse_unknown_flags(parser, argv, named_from=shown)  # the recipe parser's error: a UsageError
    refuse_split_name_flags(argv)
    try:
        return parser.parse_args_into_dataclasses(args=model_as_flag(home_expanded(parser, list(argv))))
    except UsageError:  # argparse's (`argument --batch_size: invalid int value`) and the dataclasses' own checks
        raise
    except ValueError as error:  # transformers' words left over (`evaluate m extra`), as `train` says them
        raise UsageError(f"invalid evaluate flags: {' '.join(str(error).split())}") from error


# The data flags `hfspeech evaluate` reads: where the data is, its columns, how clips are decoded. The other
# DataArguments (augmentation, sample limits, split shares, streaming ...) shape training only.
EVALUATE_DATA_FLAGS = ("data_dir", "train_file", "validation_file", "test_file", "dataset_name", "dataset_config_name",
                       "audio_column_name", "label_column_name", "path_column_name", "label_depth", "trim_silence",
                       "trim_top_db", "skip_bad_files", "preprocessing_num_workers", "label_separator")


def refuse_split_name_flags(argv: list[str]) -> None:
    """`--test_split_name` (train's, a --dataset_name split for each role) on evaluate, which scores the one split
    `--split` names: it was told of --dataset_name's splits, or that it is a training flag, and never of --split."""
    from hfspeech.errors import UsageError
    from hfspeech.training.command_line import given_flags

    names = given_flags(argv)  # abbreviated too (`--eval_split`), as argparse reads it
    given = [f"--{flag}" for flag in (f"{role}_split_name" for role in ("train", "eval", "test"))
             if any(flag.startswith(name) and name.startswith(flag[:flag.index("_split") + 3]) for name in names)]
    if given:
        raise UsageError(f"{', '.join(given)}: hfspeech evaluate scores one split: give --split NAME (as the data "
                         "names it, or by role: test, validation, train)")


def model_as_flag(argv: list[str]) -> list[str]:
    """`hfspeech evaluate RUN --test_file T`: the model first, where `predict`, `export`, `serve` and `stage` take
    it, is read as `--model RUN` (it was refused: "the following arguments are required: --model")."""
    from hfspeech.training.command_line import given_flags

    named = "model" in given_flags(argv) or "-model" in argv
    if argv and not named and not argv[0].startswith("-") and not argv[0].endswith((".json", ".yaml", ".yml")):
        return ["--model", *argv]
    return argv


def hide_training_only_flags(parser) -> None:
    """`--help` lists the flags evaluate reads: the training-only ones it refuses (below) were listed too."""
    from hfspeech.training.arguments import DataArguments

    training_only = {field for field in DataArguments.__dataclass_fields__} - set(EVALUATE_DATA_FLAGS)
    for action in parser._actions:
        if action.dest in training_only:
            action.help = argparse.SUPPRESS


def refuse_training_only_flags(data_args) -> None:
    """evaluate parses the recipe's DataArguments, so `--max_eval_samples 50` or `--noise_snr_db 10` parsed and
    then changed nothing: the report looked like an answer to them. Refused instead, by name."""
    import dataclasses

    from hfspeech.errors import UsageError

    given = [f"--{field.name}" for field in dataclasses.fields(data_args) if field.name not in EVALUATE_DATA_FLAGS
             and getattr(data_args, field.name) != (field.default if field.default_factory is dataclasses.MISSING
                                                    else field.default_factory())]
    if given:
        raise UsageError(f"{', '.join(given)}: training flag(s); hfspeech evaluate does not use them (it scores "
                         "every clip of one split, un-augmented, in windows: --window_seconds, --split)")


def distill(argv: list[str]) -> int:
    from hfspeech.training.command_line import process_state_kept
    from hfspeech.training.distill import parse_distill_args, run_distillation

    with process_state_kept():  # as train's
        distill_args, model_args, data_args, training_args = parse_distill_args(argv, prog="hfspeech distill")
        run_distillation(distill_args, model_args, data_args, training_args,
                         after_saving=trace_for_fast_start(training_args))
    return 0


def average(argv: list[str]) -> int:
    from hfspeech.cli.flags import CliParser
    from hfspeech.errors import refuse_folder_named_like_a_file

    parser = CliParser(prog="hfspeech average", description="Average the weights of runs of one recipe (e.g. "
                       "seeds fine-tuned from one pretrained checkpoint) into one model: a 'model soup', often close to "
                       "their ensemble at the cost of one model. Evaluate it before use.")
    parser.add_argument("runs", nargs="+", help="saved model folders of the same model (config, labels, sizes)")
    parser.add_argument("--output_dir", required=True, help="new folder for the averaged model")
    args = parser.parse_args(argv)
    refuse_folder_named_like_a_file(args.output_dir, "--output_dir", "the averaged model (config.json, weights)",
                                    "give a folder; `hfspeech evaluate --model FOLDER ... > metrics.json` writes its "
                                    "metrics")
    from hfspeech.export.torchscript_export import write_run_twin  # torch, transformers: not for --help or a typo
    from hfspeech.training.averaging import average_runs

    with output_dir_held_for_average(args.output_dir):  # the twin too: a second average must not start in between
        # with a baseline's twin for a fast start, as after `hfspeech train`, written before the folder is renamed in
        print(f"averaged {len(args.runs)} runs: {average_runs(args.runs, args.output_dir, also=write_run_twin)}")
    return 0


def output_dir_held_for_average(output_dir: str):
    """`--output_dir` held until the average and its twin are written (`output_folders.held_alone`, as `hfspeech
    train` holds its folder): two averages started together into one new folder both found it new, and both
    wrote their files into it, one model's weights beside the other's config."""
    from hfspeech.output_folders import held_alone

    return held_alone(output_dir, "another command is writing to this folder now (an average, a training run); "
                      "give another --output_dir", flag="--output_dir")


def cross_validate(argv: list[str]) -> int:
    from hfspeech.training.command_line import process_state_kept
    from hfspeech.training.cross_validation_args import parse_cross_validation_args

    # train's flags and --num_folds, parsed (a typo named) before any fold trains (and before numpy and datasets are
    # imported: `--help`); the first fold's log set-up holds to the summary
    with process_state_kept():
        folds_args, *recipe_args = parse_cross_validation_args(argv, prog="hfspeech cross-validate")
        from hfspeech.training.cross_validation import run_cross_validation

        run_cross_validation(*recipe_args, num_folds=folds_args.num_folds)
    return 0
