"""`hfspeech stream`: label events of live audio (raw PCM on stdin, or a growing file), as JSON lines."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys

from hfspeech.cli.common import (BACKEND_HELP, BACKENDS, MODEL_FIRST_HELP, TRUST_REMOTE_CODE_HELP, FilesParser,
                                 prepare_cold_start, reported_as_user_errors)
from hfspeech.cli.flags import DEVICE_HELP, device_name, number_in, positive, probability
from hfspeech.path_names import shown_name


def stream_parser() -> argparse.ArgumentParser:
    parser = FilesParser(
        prog="hfspeech stream",
        description="Classify live audio window by window and print a JSON line per label event: a label at or "
        "above its threshold for --min_windows consecutive windows (event: label), and one when it ends: the first "
        "window below it, or the end of the input (event: ended; start and end are the onset and offset). "
        "Audio: raw PCM or a WAV on stdin (FLAC, Ogg, "
        "MP3 ... are refused), or a growing file (raw PCM or WAV) with --follow. Ends with a JSON line of counts "
        "(event: end).",
    )
    parser.add_argument("model", help=MODEL_FIRST_HELP)
    parser.add_argument("--format", choices=["s16le", "f32le"], default="s16le", help="raw PCM sample format")
    parser.add_argument("--rate", "--sampling_rate", dest="rate", type=positive(int), default=None,  # train's name
                        help="input sampling rate (default: the model's); "
                        "other rates are resampled in the stream")
    parser.add_argument("--channels", type=positive(int), default=1,
                        help="interleaved channels (downmixed to mono)")
    parser.add_argument("--follow", default=None, metavar="FILE", help="read FILE as it grows instead of stdin")
    parser.add_argument("--idle_timeout", type=number_in(float, 0, math.inf), default=5.0,
                        help="--follow: stop after this many seconds without new data (0: at the end of the file)")
    parser.add_argument("--poll_seconds", type=number_in(float, 1e-3, 60.0), default=0.1,
                        help="--follow: how often to look for new data (0.001 to 60 s)")
    parser.add_argument("--window_seconds", type=positive(float), default=None,
                        help="window (default: the clip length the model was trained on)")
    parser.add_argument("--hop_seconds", type=positive(float), default=None, help="hop between windows (default: half)")
    parser.add_argument("--threshold", type=probability, default=None,  # None: not given (a warning's condition)
                        help="score a label needs (default 0.5); a label the model has a tuned threshold for "
                        "(config.label_thresholds) keeps that one, with a warning when this flag is given")
    parser.add_argument("--min_windows", type=positive(int), default=3,
                        help="consecutive windows above threshold per event")
    parser.add_argument("--vad", choices=["none", "energy", "model"], default="none",
                        help="energy: skip quiet windows without running the model; model: windows whose top "
                        "label is a silence class (--silence_label) count as inactive")
    parser.add_argument("--silence_label", action="append", default=None,
                        help="--vad model: the silence class (repeatable; default: _silence_, silence, ...)")
    parser.add_argument("--windows", action="store_true", help="also print every window (event: window)")
    parser.add_argument("--top_k", type=positive(int), default=3, help="labels per window with --windows")
    parser.add_argument("--backend", choices=BACKENDS, default=None, help=BACKEND_HELP)
    parser.add_argument("--device", type=device_name, default=None, help=DEVICE_HELP)
    parser.add_argument("--trust_remote_code", action="store_true", help=TRUST_REMOTE_CODE_HELP)
    return parser


def stream(argv: list[str]) -> int:
    parser = stream_parser()
    args = parser.parse_args(argv)
    if args.follow and not os.path.isfile(args.follow):  # before the model loads, and worded as the others
        parser.error(f"--follow {shown_name(args.follow)}: "  # `\xe9`, not the surrogate `\udce9`
                     + ("is a folder" if os.path.isdir(args.follow) else "no such file"))
    if not args.follow and (sys.stdin is None or sys.stdin.isatty()):  # a keyboard: it waited for ever for audio
        parser.error(f"no audio: {'stdin is closed (<&-); ' * (sys.stdin is None)}pipe raw PCM or a WAV into stdin "
                     "(arecord ... | hfspeech stream MODEL), or give --follow FILE")
    with reported_as_user_errors(ValueError, OSError):
        classifier, given, streamer_at = _open_stream(args)
        streamer = streamer_at(given.rate)  # its checks (--vad model ...) before waiting for the audio
    from hfspeech.errors import stdout_write_errors

    def emit(results) -> None:
        with stdout_write_errors():  # a full disk behind stdout: one line naming stdout
            for result in results:
                if args.windows:
                    print(json.dumps({"event": "window", **result.to_dict(classifier.id2label, args.top_k)},
                                     allow_nan=False))
                for event in result.events:
                    print(json.dumps(event.to_dict(), allow_nan=False))
            sys.stdout.flush()

    stopped = refused = None
    try:  # from the wait for the first bytes on: a stream stopped before any audio still ends with its counts
        with reported_as_user_errors(ValueError, OSError):
            chunks, rate = _audio_chunks(args, given)
            streamer = streamer if rate == given.rate else streamer_at(rate)  # a WAV header's rate
        refused = _fed(streamer, chunks, emit)
    except KeyboardInterrupt as error:  # Ctrl-C (or SIGTERM) ends a live stream: flush its last window, print counts
        stopped = error
    with contextlib.suppress(OSError) if stopped is not None else contextlib.nullcontext():  # SIGHUP: a terminal
        emit(streamer.finish())  # gone refuses the last lines (EIO), and the signal's exit code still stands
        with stdout_write_errors():
            for event in streamer.ended_at_finish:  # the events still open when the input ended
                print(json.dumps(event.to_dict(), allow_nan=False))
            print(json.dumps(streamer.stats.to_dict()), flush=True)
    if refused is not None:  # the error last, after the lines that close the stream: exit code 2
        raise refused
    if not streamer.stats.samples and stopped is None:
        warn_no_audio(args, streamer)
    if stopped is not None:  # then say so, with the shell's code for the signal: a script's loop stops, as meant
        from hfspeech.cli.termination import said_stopped

        return said_stopped("stream", stopped)
    return 0


def _open_stream(args: argparse.Namespace):
    """The classifier, the PCM format the flags give and a maker of the streaming classifier at a rate; the audio
    is waited for afterwards (`_audio_chunks`), where an interruption still ends with the counts line."""
    from hfspeech.inference.classifier import AudioClassifier
    from hfspeech.inference.loading import backend_for_device
    from hfspeech.inference.sources import PcmFormat
    from hfspeech.inference.streaming import StreamingClassifier
    from hfspeech.inference.windows import check_windows_cover
    from hfspeech.models.scores import DEFAULT_THRESHOLD

    backend = backend_for_device(args.model, args.backend, args.device)
    prepare_cold_start(args.model, backend)
    classifier = AudioClassifier.from_pretrained(args.model, trust_remote_code=args.trust_remote_code,
                                                 backend=backend, device=args.device, untrained="error")
    check_windows_cover(*classifier.window_sizes(args.window_seconds, args.hop_seconds), classifier.sampling_rate)
    warn_if_trained_trimmed(args.model, classifier.config)
    warn_if_threshold_unused(args.threshold, classifier.config)
    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold

    def streamer_at(rate: int) -> StreamingClassifier:
        return StreamingClassifier(classifier, args.window_seconds, args.hop_seconds, input_rate=rate,
                                   threshold=threshold, min_windows=args.min_windows, vad=args.vad,
                                   silence_labels=args.silence_label, offsets=True,
                                   source=shown_name(args.follow) if args.follow else "stdin")

    return classifier, PcmFormat(args.format, args.rate or classifier.sampling_rate, args.channels), streamer_at


def _audio_chunks(args: argparse.Namespace, given):
    """(the audio chunks of stdin or the followed file, their sampling rate): waits for the first bytes, whose WAV
    header, where there is one, gives the format instead of the flags."""
    from hfspeech.inference.sources import follow_file, followed_format, read_pcm, stdin_format

    if args.follow:
        pcm, offset = followed_format(args.follow, given, args.idle_timeout, args.poll_seconds)
        return follow_file(args.follow, pcm, offset, args.idle_timeout, args.poll_seconds), pcm.rate
    pcm, head = stdin_format(sys.stdin.buffer, given)
    return read_pcm(sys.stdin.buffer, pcm, head=head), pcm.rate


def _fed(streamer, chunks, emit):
    """Feed the chunks to the end, or to one the stream refuses (NaN samples ...), whose `UsageError` (naming the
    source and the time) is returned: the stream ends before it, so its open events still get their `ended` lines
    and the counts line comes, as at the end of the input. The error alone, first, left events without an end."""
    from hfspeech.errors import UsageError

    for chunk in chunks:
        try:
            results = streamer.feed(chunk)
        except UsageError as error:
            return error
        emit(results)
    return None


def warn_no_audio(args: argparse.Namespace, streamer) -> None:
    """One stderr line when the input ended before its first sample (`< /dev/null`, an upstream ffmpeg that failed):
    alone, the counts line of zeros read as a quiet recording. The exit code stays 0: an empty input is no error.
    Frames too few for one sample at the model's rate (5 of a 384 kHz WAV) are said to have arrived: "no audio
    arrived" sent the user looking for a failed upstream command."""
    frames, rate = streamer.input_frames, streamer.input_rate
    source = f"--follow {shown_name(args.follow)}" if args.follow else "stdin"
    if frames:
        print(f"warning: too little audio: {source} gave {frames} sample(s) at {rate} Hz ({frames / rate * 1000:.3g} "
              f"ms), less than one at the model's {streamer.rate} Hz; nothing was classified", file=sys.stderr)
        return
    where = (f"{source} had none within --idle_timeout {args.idle_timeout:g} s"
             if args.follow else "stdin ended before its first sample (did the command piping into it fail?)")
    print(f"warning: no audio arrived: {where}; nothing was classified", file=sys.stderr)


def warn_if_trained_trimmed(model: str, config) -> None:
    """One stderr line when the model was trained on trimmed clips (`data.samples.stream_not_trimmed_warning`)."""
    from hfspeech.data.samples import stream_not_trimmed_warning

    if (line := stream_not_trimmed_warning(model, config)) is not None:
        print(line, file=sys.stderr)


def warn_if_threshold_unused(threshold: float | None, config) -> None:
    """One stderr line when `--threshold` was given and the model's tuned `label_thresholds` take its place: a
    multi-label model's events fired at scores 0.17 and 0.40 under `--threshold 0.9`, and nothing said why. The
    model's thresholds stay in force, as in `predict`, `evaluate` and `serve`: they are its decisions."""
    from hfspeech.errors import first_few
    from hfspeech.models.scores import id_ordered_labels

    saved = getattr(config, "label_thresholds", None) or {}
    tuned = [label for label in id_ordered_labels(config) if label in saved] if threshold is not None else []
    if not tuned:
        return
    rest = len(config.id2label) - len(tuned)
    named = first_few([f"{label}: {float(saved[label]):.3g}" for label in tuned], 20)
    print(f"warning: --threshold {threshold:g} is not used for the {len(tuned)} label(s) with a threshold in the "
          f"model's config.json (label_thresholds: {named}); it applies to "
          f"{f'the {rest} other label(s)' if rest else 'no label'}", file=sys.stderr)
