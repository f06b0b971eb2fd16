"""`hfspeech demo` (generated keywords -> two models -> metrics -> predict) and `hfspeech demo-data`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hfspeech.cli.common import flag_as_positional
from hfspeech.cli.flags import CliParser, OnOffFlag, positive, progress_wanted
from hfspeech.models.config_json import METRICS_FILE

DEMO_TRAINING_FLAGS = [
    "--model_type", "cnn",
    "--max_length_seconds", "1.0",
    "--num_train_epochs", "20",
    "--learning_rate", "3e-3",
    "--per_device_train_batch_size", "32",
    "--noise_snr_db", "10,30",
    "--time_shift_seconds", "0.1",
    "--gain_db", "6",
    "--seed", "0",
]
# A pretrained encoder needs few epochs and small steps; its lower layers move least (layer-wise decay).
DEMO_PRETRAINED_FLAGS = [
    "--max_length_seconds", "1.0",
    "--num_train_epochs", "3",
    "--learning_rate", "1e-4",
    "--head_learning_rate", "1e-3",
    "--layerwise_lr_decay", "0.9",
    "--per_device_train_batch_size", "16",
    "--time_shift_seconds", "0.1",
    "--seed", "0",
]


def demo_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="hfspeech demo",
        description="End to end on generated data: espeak-ng keywords -> the CNN baseline from scratch and a "
        "pretrained Whisper encoder fine-tuned beside it -> test metrics -> predict. Extra flags are passed to "
        "the training recipe (both runs).",
    )
    parser.add_argument("--output_dir", default="runs/demo", help="folder for the data, the two models and their "
                        "reports")
    parser.add_argument("--data_dir", default=None, help="where the keyword data goes (default: OUTPUT_DIR/data)")
    parser.add_argument("--clips_per_keyword", type=positive(int), default=100, help="generated clips per keyword")
    parser.add_argument("--pretrained", default="whisper-tiny.en",
                        help="checkpoint fine-tuned beside the CNN (`hfspeech pretrained --list`), or 'none'")
    return parser


def demo(argv: list[str]) -> int:
    parser = demo_parser()
    args, extra = parser.parse_known_args(argv)
    refuse_unknown_training_flags(parser, extra)

    from hfspeech.synthetic.spoken import generate_keyword_dataset

    refuse_unwritable_datasets_cache()
    output_dir = Path(args.output_dir)
    data_dir = Path(args.data_dir or output_dir / "data")
    refuse_users_data_folder(data_dir, "--data_dir" if args.data_dir else "--output_dir", "keywords")
    generate_keyword_dataset(data_dir, clips_per_keyword=args.clips_per_keyword, progress=progress_wanted(None))
    runs = {"CNN from scratch": _demo_run(data_dir, output_dir / "model", DEMO_TRAINING_FLAGS + extra)}
    if args.pretrained != "none":
        from hfspeech.models.whisper.pretrained import fetch_pretrained

        fetch_pretrained(args.pretrained)  # once; later runs find it in the cache
        flags = ["--model_name_or_path", args.pretrained, *DEMO_PRETRAINED_FLAGS, *extra]
        runs[f"{args.pretrained} fine-tuned"] = _demo_run(data_dir, output_dir / "pretrained", flags)
    _print_results(runs)
    return _predict_unseen(runs, output_dir)


def refuse_users_data_folder(folder, flag: str, kind: str) -> None:
    """A folder of the user's, not one a generator of this `kind` wrote (`synthetic.reuse.generators_own`; "noise":
    its `noise_NN_colour.wav` names), refused in one line: the generators wrote `README.md` (and `labels.csv`) and
    `<keyword>/<keyword>_<nnnn>.wav` over the user's files and removed clips of theirs named like their own
    (`hfspeech demo --data_dir data/`, a user's own keyword recordings, `demo-data` into a notes folder)."""
    from hfspeech.synthetic.reuse import generators_own, refuse_users_folder
    from hfspeech.synthetic.signals import is_noise_file_name

    ours = is_noise_file_name if kind == "noise" else generators_own(folder, kind)
    refuse_users_folder(folder, ours, "noise files" if kind == "noise" else f"{kind} data", flag)


def refuse_unwritable_datasets_cache() -> None:
    """The training's one line about the datasets cache (a read-only HOME: a container's), said before the data is
    generated rather than after it (17 s of espeak-ng first, in an audit's pod)."""
    import datasets

    from hfspeech.data.cache_users import cache_folder_problem
    from hfspeech.errors import DataError

    folder = Path(datasets.config.HF_DATASETS_CACHE)
    if problem := cache_folder_problem(folder):
        raise DataError(f"{folder}: cannot write the demo's decoded audio to the datasets cache ({problem}); set "
                        "HF_DATASETS_CACHE to a folder you can write")


def refuse_unknown_training_flags(parser: argparse.ArgumentParser, extra: list[str]) -> None:
    """The flags demo passes on to the training recipe, checked by name before the data is generated: a typo
    (`--num_train_epohcs 1`) was refused by the first training run, after minutes of speech synthesis."""
    from hfspeech.training.command_line import recipe_parser, refuse_mistyped_flags

    refuse_mistyped_flags(recipe_parser(prog=parser.prog), extra, also_known=tuple(parser._option_string_actions))


def _demo_run(data_dir: Path, model_dir: Path, flags: list[str]) -> tuple[Path, dict, float]:
    """One demo training run: (model folder, its metrics.json plus the parameter count, wall seconds)."""
    import math
    import time

    from safetensors import safe_open

    from hfspeech.cli.training import train

    start = time.perf_counter()
    train(["--data_dir", str(data_dir), "--output_dir", str(model_dir), "--overwrite_output_dir", *flags])
    seconds = time.perf_counter() - start
    metrics = json.loads((model_dir / METRICS_FILE).read_text(encoding="utf-8"))
    with safe_open(str(model_dir / "model.safetensors"), "np") as weights:
        metrics["num_parameters"] = sum(math.prod(weights.get_slice(k).get_shape()) for k in weights.keys())
    return model_dir, metrics, seconds


def _print_results(runs: dict[str, tuple[Path, dict, float]]) -> None:
    print("\n| model | parameters | test accuracy | macro-F1 | training |\n|---|---|---|---|---|")
    for name, (model_dir, metrics, seconds) in runs.items():
        print(f"| {name} | {metrics['num_parameters'] / 1e6:.2f}M | {metrics['test_accuracy']:.3f} | "
              f"{metrics['test_macro_f1']:.3f} | {seconds:.0f} s |")
    model_dir, metrics, _ = runs["CNN from scratch"]
    print(f"\n{metrics['num_test_clips']} held-out clips (chance {1.0 / metrics['num_labels']:.3f}); confusion "
          f"matrices: {', '.join(str(d / 'test_confusion_matrix.png') for d, _, _ in runs.values())}")


def _predict_unseen(runs: dict[str, tuple[Path, dict, float]], output_dir: Path) -> int:
    """`hfspeech predict` with each model on clips no model has seen: generated now, with another seed (so
    another voice, speed, noise). A model that cannot predict is reported and the next one still runs."""
    from hfspeech.cli.common import print_error
    from hfspeech.cli.predict import predict
    from hfspeech.errors import HfspeechError
    from hfspeech.synthetic.spoken import generate_keyword_dataset

    unseen = generate_keyword_dataset(output_dir / "unseen", keywords=["left", "stop"], clips_per_keyword=1,
                                      seed=2026, progress=False)
    examples = sorted(str(p) for p in unseen.glob("*/*.wav"))
    status = 0
    for model_dir, _, _ in runs.values():
        print(f"\n$ hfspeech predict {model_dir} {' '.join(examples)}")
        try:
            status = predict([str(model_dir), *examples]) or status
        except HfspeechError as error:
            print_error(error)
            status = 2
    return status


# The flags that shape one kind of data set only: given with another --kind they were ignored without a word.
KIND_FLAGS = {"num_clips": ("events",), "events": ("events",), "clips": ("keywords", "languages"),
              "keywords": ("keywords",), "languages": ("languages",)}


def demo_data_parser() -> argparse.ArgumentParser:
    from hfspeech.cli.flags import number_in
    from hfspeech.synthetic.events import DEFAULT_EVENTS
    from hfspeech.synthetic.spoken import DEFAULT_KEYWORDS, DEFAULT_LANGUAGES

    parser = CliParser(prog="hfspeech demo-data", description="Generate an offline data set: espeak-ng keywords "
                       "(keyword spotting) or languages (spoken-language ID), or synthetic sound events "
                       "(multi-label, no espeak-ng needed).")
    parser.add_argument("output_dir", help="folder to write (--output_dir DIR works too, as on demo)")
    parser.add_argument("--kind", choices=["keywords", "languages", "events"], default="keywords",
                        help="espeak-ng keywords or languages, or synthetic multi-label sound events")
    parser.add_argument("--num_clips", type=positive(int), default=None, help="events: number of clips (default 400)")
    parser.add_argument("--events", nargs="+", default=None,
                        help=f"events: the event types (default: {' '.join(DEFAULT_EVENTS)})")
    parser.add_argument("--clips_per_class", "--clips_per_keyword", dest="clips", type=positive(int), default=None,
                        help="clips per keyword (default 60) or per language (default 40)")
    parser.add_argument("--keywords", nargs="+", default=None, help=f"default: {' '.join(DEFAULT_KEYWORDS)}")
    parser.add_argument("--languages", nargs="+", default=None,
                        help=f"espeak-ng language voices (espeak-ng --voices lists them; default: "
                        f"{' '.join(DEFAULT_LANGUAGES)})")
    parser.add_argument("--seed", type=number_in(int, 0, 2**32 - 1), default=0, help="seed of every random draw")
    parser.add_argument("--sampling_rate", type=positive(int), default=16000, help="the clips' rate in Hz")
    parser.add_argument("--clip_seconds", type=positive(float), default=None,
                        help="default 1.0 (keywords, events), 2.0 (languages)")
    parser.add_argument("--noise_files", metavar="DIR", help="also write a few background-noise wavs to DIR")
    parser.add_argument("--progress", action=OnOffFlag, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")
    return parser


def demo_data(argv: list[str]) -> int:
    from hfspeech.synthetic.events import DEFAULT_EVENTS, generate_event_dataset
    from hfspeech.synthetic.signals import generate_noise_files
    from hfspeech.synthetic.spoken import (DEFAULT_KEYWORDS, DEFAULT_LANGUAGES, generate_keyword_dataset,
                                           generate_language_dataset)

    parser = demo_data_parser()
    args = parser.parse_args(flag_as_positional(argv, "--output_dir", first=True))  # as `demo --output_dir` takes it
    for dest, kinds in KIND_FLAGS.items():
        if getattr(args, dest) is not None and args.kind not in kinds:
            parser.error(f"--{'clips_per_class' if dest == 'clips' else dest} applies to --kind {' or '.join(kinds)}, "
                         f"not {args.kind}")
    for name, folder in (("OUTPUT_DIR", args.output_dir), ("--noise_files", args.noise_files)):
        if folder and Path(folder).exists() and not Path(folder).is_dir():  # was a traceback (FileExistsError)
            parser.error(f"{name} {folder}: is a file, not a folder")
    refuse_users_data_folder(args.output_dir, "", args.kind)  # a positional: named alone, as tiny-model names it
    if args.noise_files:
        refuse_users_data_folder(args.noise_files, "--noise_files", "noise")
    progress = progress_wanted(args.progress)
    common = dict(sampling_rate=args.sampling_rate, seed=args.seed, progress=progress)
    if args.kind == "events":
        root = generate_event_dataset(args.output_dir, events=args.events or list(DEFAULT_EVENTS),
                                      num_clips=args.num_clips or 400, sampling_rate=args.sampling_rate,
                                      clip_seconds=args.clip_seconds or 1.0, seed=args.seed)
    elif args.kind == "keywords":
        root = generate_keyword_dataset(args.output_dir, keywords=args.keywords or DEFAULT_KEYWORDS,
                                        clips_per_keyword=args.clips or 60, clip_seconds=args.clip_seconds or 1.0,
                                        **common)
    else:
        root = generate_language_dataset(args.output_dir, languages=args.languages or DEFAULT_LANGUAGES,
                                         clips_per_language=args.clips or 40,
                                         clip_seconds=args.clip_seconds or 2.0, **common)
    print(f"{args.kind} dataset: {root}")
    if args.noise_files:
        generate_noise_files(args.noise_files, sampling_rate=args.sampling_rate, seed=args.seed)
        print(f"noise files: {args.noise_files}")
    return 0
