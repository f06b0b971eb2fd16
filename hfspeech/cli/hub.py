"""`hfspeech stage` and `hfspeech push`: a training run as a Hub repo folder with its model card, and its upload."""

from __future__ import annotations

import argparse

from hfspeech.cli.flags import CliParser


def _publish_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = CliParser(prog=prog, description=description)
    parser.add_argument("run", help="a training run's output_dir")
    parser.add_argument("--include_onnx", action="store_true", help="add OUTPUT_DIR/onnx (`hfspeech export`)")
    parser.add_argument("--eval_dir", default=None,
                        help="audio folder <label>/*.wav on which to measure each variant's accuracy and latency")
    parser.add_argument("--dataset", default=None, help="training data set name for the card's metadata")
    return parser


def stage(argv: list[str]) -> int:
    parser = _publish_parser("hfspeech stage", "Write the Hub repo folder `push` would upload: weights, configs, "
                             "model card, reports, self-contained model code.")
    parser.add_argument("dest", help="folder to write (new or empty, or an earlier staging, which is replaced)")
    parser.add_argument("--repo_id", default=None, help="repo id the card's snippets name")
    args = parser.parse_args(argv)
    from hfspeech.hub import stage_run

    files = stage_run(args.run, args.dest, args.repo_id, args.include_onnx, args.eval_dir, args.dataset)
    for file in files:
        print(f"{file}  ({file.stat().st_size / 1e6:.3f} MB)")
    return 0


def push(argv: list[str]) -> int:
    parser = _publish_parser("hfspeech push", "Stage a run and upload it to the Hub with huggingface_hub "
                             "(token from HF_TOKEN or `huggingface-cli login`).")
    parser.add_argument("--repo_id", required=True)
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision", default=None, help="branch to push to (created if missing)")
    parser.add_argument("--dry_run", action="store_true", help="list the files that would be uploaded; send nothing")
    args = parser.parse_args(argv)
    from hfspeech.hub import push_run

    paths = push_run(args.run, args.repo_id, args.private, args.revision, args.include_onnx, args.dry_run,
                     args.eval_dir, args.dataset)
    print(("would upload" if args.dry_run else "uploaded") + f" {len(paths)} files to {args.repo_id}:")
    print("\n".join(f"  {path}" for path in paths))
    return 0
