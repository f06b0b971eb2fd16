"""`hfspeech stage` and `hfspeech push`: a training run as a Hub repo folder with its model card, and its upload."""

from __future__ import annotations

import argparse

from hfspeech.cli.common import flag_as_positional, model_first
from hfspeech.cli.flags import CliParser


def add_held_out_flags(parser: argparse.ArgumentParser) -> None:
    """`--label_depth` and `--skip_bad_files` as `hfspeech train` has them, so that `export` and `stage`/`push`
    read the folder a run was trained on (nested class folders, a corrupt file) as training read it."""
    parser.add_argument("--label_depth", type=int, default=None,
                        help="--eval_dir with nested folders (DIR/<label>/<session>/*.wav): which folder below DIR "
                        "is the label (1 = the first), as in `hfspeech train`")
    parser.add_argument("--skip_bad_files", action="store_true", help="skip audio files that cannot be decoded "
                        "(empty, corrupt), counted in one warning, instead of stopping on the first")


def check_held_out_flags(parser: argparse.ArgumentParser, args: argparse.Namespace, *folder_flags: str) -> None:
    """`--label_depth` and `--skip_bad_files` read a folder: given without one of `folder_flags`, they would be
    silently ignored."""
    given = [flag for flag in folder_flags if getattr(args, flag[2:]) is not None]
    if args.label_depth is not None and "--eval_dir" not in given:
        parser.error("--label_depth reads --eval_dir's labels: give --eval_dir too")
    if args.label_depth is not None and args.label_depth < 1:
        parser.error(f"--label_depth {args.label_depth}: must be 1 or more (1 = the first folder below --eval_dir)")
    if args.skip_bad_files and not given:
        parser.error(f"--skip_bad_files applies to {' and '.join(folder_flags)}: give one")


def _publish_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = CliParser(prog=prog, description=description)
    parser.add_argument("run", help="a training run's output_dir (--model RUN works too, as on evaluate)")
    parser.add_argument("--include_onnx", action="store_true", help="add OUTPUT_DIR/onnx (`hfspeech export`)")
    parser.add_argument("--eval_dir", default=None,
                        help="audio folder <label>/*.wav on which to measure each variant's accuracy and latency")
    add_held_out_flags(parser)
    parser.add_argument("--dataset", default=None, help="training data set name for the card's metadata")
    parser.add_argument("--license", default=None, help="the model's license as a Hub license id (apache-2.0, mit, "
                        "cc-by-4.0, other ...) for the card's metadata; none is written without it")
    return parser


def stage(argv: list[str]) -> int:
    parser = _publish_parser("hfspeech stage", "Write the Hub repo folder `push` would upload: weights, configs, "
                             "model card, reports, self-contained model code.")
    parser.add_argument("dest", help="folder to write (new or empty, or an earlier staging, which is replaced; "
                        "--output_dir DEST works too)")
    parser.add_argument("--repo_id", default=None, help="repo id the card's snippets name")
    args = parser.parse_args(flag_as_positional(model_first(argv), "--output_dir", first=False))  # RUN, then DEST
    from hfspeech.hub import stage_run

    check_held_out_flags(parser, args, "--eval_dir")
    files = stage_run(args.run, args.dest, args.repo_id, args.include_onnx, args.eval_dir, args.dataset,
                      label_depth=args.label_depth, skip_bad_files=args.skip_bad_files, license=args.license)
    for file in files:
        print(f"{file}  ({file.stat().st_size / 1e6:.3f} MB)")
    return 0


def push(argv: list[str]) -> int:
    parser = _publish_parser("hfspeech push", "Stage a run and upload it to the Hub with huggingface_hub "
                             "(token from HF_TOKEN or `hf auth login`).")
    parser.add_argument("--repo_id", required=True)
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision", default=None, help="branch to push to (created if missing)")
    parser.add_argument("--dry_run", action="store_true", help="list the files that would be uploaded; send nothing")
    args = parser.parse_args(model_first(argv))
    from hfspeech.hub import push_run

    check_held_out_flags(parser, args, "--eval_dir")
    paths = push_run(args.run, args.repo_id, args.private, args.revision, args.include_onnx, args.dry_run,
                     args.eval_dir, args.dataset, label_depth=args.label_depth, skip_bad_files=args.skip_bad_files,
                     license=args.license)
    print(("would upload" if args.dry_run else "uploaded") + f" {len(paths)} files to {args.repo_id}:")
    print("\n".join(f"  {path}" for path in paths))
    return 0
