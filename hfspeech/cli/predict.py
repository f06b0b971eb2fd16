"""`hfspeech predict`: top-k labels of audio files of any length, printed or written as they are done.

Imports of torch and transformers wait until a command runs (inside the functions): `hfspeech --help` and
`hfspeech predict` on an ONNX export load neither (tests/test_startup.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from hfspeech.cli.common import (BACKEND_HELP, BACKENDS, MODEL_FIRST_HELP, TRUST_REMOTE_CODE_HELP, FilesParser, one_line,
                                 prepare_cold_start, print_error, reported_as_user_errors)
from hfspeech.cli.flags import DEVICE_HELP, OnOffFlag, device_name, positive, progress_wanted

STDOUT = "-"  # the --output that means stdout (hfspeech.inference.stdout_rows)


def predict_parser() -> argparse.ArgumentParser:
    parser = FilesParser(prog="hfspeech predict", description="Top-k labels of audio files.")
    parser.add_argument("model", help=MODEL_FIRST_HELP)
    parser.add_argument("files", nargs="*", help="audio files (wav, flac, mp3, ogg ...) or folders of them")
    parser.add_argument("--manifest", default=None, help="also the files of a CSV/TSV/JSONL manifest (its path "
                        "column, relative to the manifest's folder)")
    parser.add_argument("--path_column", "--path_column_name", dest="path_column", default="path",  # train's name too
                        help="--manifest: the column holding the paths")
    parser.add_argument("--top_k", type=positive(int), default=3, help="labels per file (a multi-label model's "
                        "active labels below them too)")
    parser.add_argument("--window_seconds", type=positive(float), default=None,
                        help="window for long files (default: the clip length the model was trained on)")
    parser.add_argument("--hop_seconds", type=positive(float), default=None, help="hop between windows (default: half)")
    parser.add_argument("--aggregate", choices=["mean", "max", "vote"], default="mean",
                        help="how window scores become the file's: mean or max of the scores, or majority vote")
    parser.add_argument("--timeline", default=None, metavar="OUT_DIR",
                        help="write each file's windows to OUT_DIR/<name>.timeline.{json,csv,png}")
    parser.add_argument("--json", action="store_true", help="print one JSON object per file")
    parser.add_argument("--output", default=None, metavar="FILE", help="write one row per file to FILE (.jsonl or "
                        ".csv) as each is done, instead of printing; files already in FILE are skipped (resume). "
                        "`-`: the rows on stdout, in --format (default jsonl), for a pipe; stdout is never resumed "
                        "(default: None: printed on stdout)")
    parser.add_argument("--format", choices=["jsonl", "csv"], default=None,
                        help="rows for --output - (default jsonl); without --output, the same rows on stdout; "
                        "with --output FILE, its extension decides and a --format that differs is refused")
    parser.add_argument("--batch_size", type=positive(int), default=16, help="windows per model call, across files")
    parser.add_argument("--backend", choices=BACKENDS, default=None, help=BACKEND_HELP)
    parser.add_argument("--device", type=device_name, default=None, help=DEVICE_HELP)
    parser.add_argument("--progress", action=OnOffFlag, default=None,
                        help="progress bar with the real-time factor on stderr (default: when stderr is a terminal)")
    parser.add_argument("--trust_remote_code", action="store_true", help=TRUST_REMOTE_CODE_HELP)
    return parser


def predict(argv: list[str]) -> int:
    """Exit code 0, or 1 when some files could not be read or decoded (each named on stderr; the others are done)."""
    parser = predict_parser()
    args = parser.parse_args(argv)
    if not args.files and not args.manifest:
        parser.error("give audio files, folders or --manifest")
    if STDOUT in args.files and not os.path.lexists(STDOUT):  # was "-: file not found", counted as a failed file
        parser.error("-: predict reads audio files, not stdin; save the audio to a file, or pipe it into "
                     "`hfspeech stream MODEL` (raw PCM or WAV)")
    refuse_streams(parser, args.files)
    if args.timeline and Path(args.timeline).is_file():
        parser.error(f"--timeline {args.timeline}: is a file; give a folder for the timelines")
    check_output_flags(parser, args)

    from hfspeech.inference.classifier import AudioClassifier
    from hfspeech.inference.loading import backend_for_device
    from hfspeech.inference.outputs import check_same_model, expand_inputs, read_earlier_output, same_file
    from hfspeech.inference.windows import check_windows_cover
    from hfspeech.models.scores import is_multi_label

    with reported_as_user_errors(ValueError, OSError):
        files = expand_inputs(args.files, args.manifest, args.path_column)
        to_file = args.output not in (None, STDOUT)
        done, written_labels = read_earlier_output(args.output) if to_file else (set(), set())
        backend = backend_for_device(args.model, args.backend, args.device)
        prepare_cold_start(args.model, backend)
        classifier = AudioClassifier.from_pretrained(args.model, trust_remote_code=args.trust_remote_code,
                                                     backend=backend, device=args.device, untrained="error",
                                                     batch_size=args.batch_size)
        check_windows_cover(*classifier.window_sizes(args.window_seconds, args.hop_seconds), classifier.sampling_rate)
        if to_file:
            check_same_model(args.output, written_labels, classifier.id2label.values(), args.model)
        writer = open_writer(args.output, args.format, is_multi_label(classifier.config))
        done = done if writer is None else writer.written_paths()  # now that this run holds the file
    done = {same_file(path) for path in done}
    todo = [path for path in files if same_file(path) not in done]
    try:
        failures = _predict_files(classifier, todo, args, writer, timeline_stems(files))
    finally:
        if writer is not None:
            writer.close()
    if writer is not None:
        print_summary(args.output, len(todo) - failures, len(files) - len(todo), failures)
    elif failures:  # to stdout: the count at the end, as --output FILE gives it (500 error lines, then nothing)
        print(f"{failures} of {len(todo)} files could not be read or decoded (each named above)", file=sys.stderr)
    return 1 if failures else 0


def refuse_streams(parser: argparse.ArgumentParser, files: list[str]) -> None:
    """A usage error for the first of `files` that is a stream (`stream_kind`): was "file is empty (0 bytes)"."""
    from hfspeech.data.audio import stream_kind
    from hfspeech.path_names import shown_name

    for path in files:
        if kind := stream_kind(path):
            parser.error(f"{shown_name(path)}: {kind}, not a file: predict reads a file more than once, which a "
                         "stream cannot give; save the audio to a file, or pipe it into `hfspeech stream MODEL` "
                         "(raw PCM or WAV)")


def print_summary(output: str, written: int, resumed: int, failures: int) -> None:
    """The closing `N files written to FILE` line on stderr, FILE named as every other message names a path
    (`path_names.shown_name`): an --output holding a line break was printed over two lines."""
    from hfspeech.path_names import shown_name

    where = "stdout" if output == STDOUT else shown_name(output)
    already = "" if output == STDOUT else f"{resumed} already there, "
    print(f"{written} files written to {where} ({already}{failures} failed)", file=sys.stderr)


def check_output_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--output, --format and --json agree, or the run stops before the model loads. --format without --output
    means rows on stdout (`--output -`); --json there means its JSON lines."""
    from hfspeech.inference.outputs import OUTPUT_FORMATS
    from hfspeech.inference.stdout_rows import DEFAULT_STDOUT_FORMAT

    if args.output is not None and not args.output.strip():
        parser.error("--output is empty; give a .jsonl or .csv file, or - for the rows on stdout")
    if args.json and args.format == "csv":
        parser.error("--json with --format csv: give one of them (--json means JSON lines)")
    if args.output is None and args.format:
        args.output = STDOUT
    if args.output == STDOUT:
        args.format = "jsonl" if args.json else args.format or DEFAULT_STDOUT_FORMAT
        return
    suffix = Path(args.output or "").suffix.lower()
    given = "--json" if args.json else f"--format {args.format}" if args.format else None
    wanted = "jsonl" if args.json else args.format
    if args.output and wanted and suffix in OUTPUT_FORMATS and OUTPUT_FORMATS[suffix] != wanted:
        parser.error(f"{given} with --output {args.output}: the file's format comes from its extension; give a "
                     f".{wanted} file, or drop {given} (or give --output - for {wanted} rows on stdout)")


def open_writer(output, kind, multi_label: bool = False):
    """Where the rows go: nowhere (printed lines), stdout for `-`, else the FILE (held by this run)."""
    from hfspeech.inference.outputs import PredictionWriter
    from hfspeech.inference.stdout_rows import StdoutPredictionWriter

    if output is None:
        return None
    if output == STDOUT:
        return StdoutPredictionWriter(kind, multi_label=multi_label)
    return PredictionWriter(output, multi_label)


def _predict_files(classifier, todo: list[str], args: argparse.Namespace, writer, stems: dict) -> int:
    """Classify `todo`, printing or writing each result as it comes; returns how many files failed. Each file's
    labels are its top k and every label active for it ranked below them (`with_every_active_label`)."""
    from hfspeech.data.audio import AudioFileError
    from hfspeech.errors import stdout_write_errors
    from hfspeech.inference.batch import predict_files
    from hfspeech.inference.outputs import with_every_active_label
    from hfspeech.inference.timeline import write_timeline

    progress = progress_wanted(args.progress)
    failures = 0
    for path, result in predict_files(classifier, todo, len(classifier.id2label), args.window_seconds,
                                      args.hop_seconds, args.aggregate, progress=progress):
        if isinstance(result, AudioFileError):
            print_error_beside_bar(result, progress)
            failures += 1
            continue
        result = with_every_active_label(result, args.top_k)
        if args.timeline:
            write_timeline(result, classifier, args.timeline, stems[path].pop(0), top_k=args.top_k)
        if writer is not None:
            writer.write(result)
        else:
            with stdout_write_errors():
                _print_prediction(result, classifier, args.json)
    return failures


def print_error_beside_bar(error: BaseException, progress: bool) -> None:
    """The `error:` line of a file that failed, on a line of its own: printed after the progress bar's last
    state, it was glued to it (`audio: 2 s [00:00, 9x real time]error: ...`); tqdm clears the bar, prints the
    line and draws the bar again below it."""
    if not progress:
        print_error(error)
        return
    from tqdm.auto import tqdm

    tqdm.write(one_line(error), file=sys.stderr)


def timeline_stems(files: list[str]) -> dict[str, list[str]]:
    """Each file's OUT_DIR/<stem>.timeline.* name, in the order of `files` (a path given twice has two):
    its stem, with -2, -3 ... after a stem an earlier file took. Named over every file of the run, done or
    not, so that a file gets the same name in a resumed run: naming only the files left to do gave a later
    file the name of an earlier one done before, and its timeline replaced the earlier file's. Stems are
    compared ignoring case: on macOS and Windows `Yes.timeline.json` and `yes.timeline.json` are one file."""
    taken: set[str] = set()
    stems: dict[str, list[str]] = {}
    for path in files:
        stem = candidate = Path(path).stem
        number = 2
        while candidate.casefold() in taken:
            candidate, number = f"{stem}-{number}", number + 1
        taken.add(candidate.casefold())
        stems.setdefault(path, []).append(candidate)
    return stems


def _print_prediction(prediction, classifier, as_json: bool) -> None:
    from hfspeech.models.scores import is_multi_label

    if as_json:
        print(json.dumps(prediction.to_dict(), allow_nan=False), flush=True)  # a NaN score is null, not `NaN`
        return
    ranked = ", ".join(f"{printable(label)} ({score:.3f})"
                       for label, score in zip(prediction.labels, prediction.scores))
    windows = f"  [{prediction.num_windows} windows]" if prediction.num_windows > 1 else ""
    active = (f"  active: {', '.join(map(printable, prediction.active_labels)) or '-'}"
              if is_multi_label(classifier.config) else "")
    print(f"{printable(prediction.path)}: {ranked}{windows}{active}", flush=True)


def printable(text: str) -> str:
    """`text` on one line: as it is, or as Python's repr (`'a\\nb.wav'`) when it holds a newline, a tab or
    another character that is not printable, so that each file stays one line of the plain output."""
    return text if text.isprintable() else repr(text)
