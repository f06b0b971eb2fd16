"""`hfspeech serve`: an HTTP server with the Hub's audio-classification API and a web page (docs/serving.md)."""

from __future__ import annotations

import argparse
import os

from hfspeech.cli.common import BACKENDS, MODEL_HELP, print_error
from hfspeech.cli.flags import CliParser


def serve_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="hfspeech serve",
        description="Serve a model over HTTP with the Hugging Face Hub's audio-classification API "
        "(huggingface_hub.InferenceClient works against it), a web page at /, /health, /info, /metrics and "
        "live PCM on /stream. See docs/serving.md.",
    )
    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument("--backend", choices=BACKENDS, default=None)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1, help="processes, each with its own model")
    parser.add_argument("--max_batch_size", type=int, default=32, help="windows per model call (1: no batching)")
    parser.add_argument("--max_wait_ms", type=float, default=5.0, help="longest wait for a batch to fill")
    parser.add_argument("--max_body_mb", type=float, default=25.0, help="largest request body (413 above)")
    parser.add_argument("--max_seconds", type=float, default=600.0, help="longest audio accepted")
    parser.add_argument("--request_timeout", type=float, default=30.0, help="seconds before a request gets 408")
    parser.add_argument("--top_k", type=int, default=5, help="labels per answer when the request does not say")
    parser.add_argument("--api_key", default=None, help="require `Authorization: Bearer KEY` on every route but "
                        "/health and the page (default: $HFSPEECH_API_KEY; none: open)")
    parser.add_argument("--trust_remote_code", action="store_true")
    parser.add_argument("--log_level", default="info")
    return parser


def serve(argv: list[str]) -> int:
    args = serve_parser().parse_args(argv)

    from hfspeech.serve.app import API_KEY_ENV, ServeSettings, run_server

    settings = ServeSettings(args.model, args.backend, args.trust_remote_code, args.max_batch_size, args.max_wait_ms,
                             int(args.max_body_mb * 1024 * 1024), args.max_seconds, args.request_timeout, args.top_k,
                             args.api_key or os.environ.get(API_KEY_ENV) or None)
    load_error = run_server(settings, args.host, args.port, args.workers, args.log_level)
    if load_error:
        print_error(load_error)
        return 2
    return 0
