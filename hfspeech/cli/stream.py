"""`hfspeech stream`: label events of live audio (raw PCM on stdin, or a growing file), as JSON lines."""

from __future__ import annotations

import argparse
import json
import os
import sys

from hfspeech.cli.common import BACKENDS, MODEL_HELP, prepare_cold_start, reported_as_user_errors
from hfspeech.cli.flags import CliParser, positive, probability


def stream_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="hfspeech stream",
        description="Classify live audio window by window and print a JSON line per label event: a label at or "
        "above its threshold for --min_windows consecutive windows. Audio: raw PCM on stdin, or a growing file "
        "(raw PCM or WAV) with --follow. Ends with a JSON line of counts (event: end).",
    )
    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument("--format", choices=["s16le", "f32le"], default="s16le", help="raw PCM sample format")
    parser.add_argument("--rate", type=positive(int), default=None, help="input sampling rate (default: the model's); "
                        "other rates are resampled in the stream")
    parser.add_argument("--channels", type=int, default=1, help="interleaved channels (downmixed to mono)")
    parser.add_argument("--follow", default=None, metavar="FILE", help="read FILE as it grows instead of stdin")
    parser.add_argument("--idle_timeout", type=float, default=5.0, help="--follow: stop after this many seconds "
                        "without new data")
    parser.add_argument("--poll_seconds", type=float, default=0.1, help="--follow: how often to look for new data")
    parser.add_argument("--window_seconds", type=positive(float), default=None,
                        help="window (default: the clip length the model was trained on)")
    parser.add_argument("--hop_seconds", type=positive(float), default=None, help="hop between windows (default: half)")
    parser.add_argument("--threshold", type=probability, default=0.5,
                        help="score a label needs (config.label_thresholds overrides it per label)")
    parser.add_argument("--min_windows", type=int, default=3, help="consecutive windows above threshold per event")
    parser.add_argument("--vad", choices=["none", "energy", "model"], default="none",
                        help="energy: skip quiet windows without running the model; model: windows whose top "
                        "label is a silence class (--silence_label) count as inactive")
    parser.add_argument("--silence_label", action="append", default=None,
                        help="--vad model: the silence class (repeatable; default: _silence_, silence, ...)")
    parser.add_argument("--windows", action="store_true", help="also print every window (event: window)")
    parser.add_argument("--top_k", type=positive(int), default=3, help="labels per window with --windows")
    parser.add_argument("--backend", choices=BACKENDS, default=None)
    parser.add_argument("--trust_remote_code", action="store_true")
    return parser


def stream(argv: list[str]) -> int:
    parser = stream_parser()
    args = parser.parse_args(argv)
    if args.follow and not os.path.isfile(args.follow):  # before the model loads, and worded as the others
        parser.error(f"--follow {args.follow}: " + ("is a folder" if os.path.isdir(args.follow) else "no such file"))
    with reported_as_user_errors(ValueError, OSError):
        classifier, chunks, streamer = _open_stream(args)

    def emit(results) -> None:
        for result in results:
            if args.windows:
                print(json.dumps({"event": "window", **result.to_dict(classifier.id2label, args.top_k)}))
            for event in result.events:
                print(json.dumps(event.to_dict()))
        sys.stdout.flush()

    try:
        for chunk in chunks:
            emit(streamer.feed(chunk))
    except KeyboardInterrupt:  # Ctrl-C ends a live stream: flush its last window and print the counts
        pass
    emit(streamer.finish())
    print(json.dumps(streamer.stats.to_dict()))
    return 0


def _open_stream(args: argparse.Namespace):
    """The classifier, the audio chunks (stdin or the followed file) and the streaming classifier over them."""
    from hfspeech.inference.classifier import AudioClassifier
    from hfspeech.inference.sources import PcmFormat, follow_file, followed_format, read_pcm
    from hfspeech.inference.streaming import StreamingClassifier

    prepare_cold_start(args.model, args.backend)

    classifier = AudioClassifier.from_pretrained(args.model, trust_remote_code=args.trust_remote_code,
                                                 backend=args.backend)
    pcm = PcmFormat(args.format, args.rate or classifier.sampling_rate, args.channels)
    if args.follow:
        pcm, offset = followed_format(args.follow, pcm, args.idle_timeout, args.poll_seconds)
        chunks = follow_file(args.follow, pcm, offset, args.idle_timeout, args.poll_seconds)
    else:
        chunks = read_pcm(sys.stdin.buffer, pcm)
    streamer = StreamingClassifier(classifier, args.window_seconds, args.hop_seconds, input_rate=pcm.rate,
                                   threshold=args.threshold, min_windows=args.min_windows, vad=args.vad,
                                   silence_labels=args.silence_label)
    return classifier, chunks, streamer
