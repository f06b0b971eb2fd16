"""`hfspeech serve`: an HTTP server with the Hub's audio-classification API and a web page (docs/serving.md)."""

from __future__ import annotations

import argparse
import math
import os
import sys

from hfspeech.cli.common import (BACKEND_HELP, BACKENDS, MODEL_FIRST_HELP, TRUST_REMOTE_CODE_HELP, model_first,
                                 print_error)
from hfspeech.cli.flags import DEVICE_HELP, CliParser, device_name, number_in, positive
from hfspeech.errors import UsageError


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")  # uvicorn's


def finite_positive(text: str) -> float:
    """A number above zero that is not infinite (`--max_body_mb inf` was a traceback, inf seconds no limit)."""
    value = positive(float)(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


finite_positive.__name__ = "float"  # argparse names the kind in "invalid float value: 'x'"


def host_names(text: str) -> list[str]:
    """`--allowed_hosts a,b`: bare host names (a port, a scheme or a path in one would never match a Host)."""
    import ipaddress
    import re

    names = [name.strip().lower() for name in text.split(",")]
    for name in names:
        try:
            ipaddress.IPv6Address(name.strip("[]"))
            continue
        except ValueError:
            if name == "*" or re.fullmatch(r"(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*", name):
                continue
        raise argparse.ArgumentTypeError(f"{name!r} is not a host name: give names without scheme, port or path, "
                                         "comma-separated (e.g. myhost.lan,proxy.example.com)")
    return names


host_names.__name__ = "host name list"


def serve_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="hfspeech serve",
        description="Serve a model over HTTP with the Hugging Face Hub's audio-classification API "
        "(huggingface_hub.InferenceClient works against it), a web page at /, /health, /info, /metrics and "
        "live PCM on /stream. See docs/serving.md.",
    )
    parser.add_argument("model", help=MODEL_FIRST_HELP)
    parser.add_argument("--backend", choices=BACKENDS, default=None, help=BACKEND_HELP)
    parser.add_argument("--device", type=device_name, default=None, help=DEVICE_HELP + "; each worker loads on it")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--allowed_hosts", type=host_names, default=None,
                        help="Host names answered besides localhost/127.0.0.1/[::1], comma-separated (a reverse "
                        "proxy's, this machine's name; *.example.com, * for any). Default: on loopback only "
                        "those (a web page rebinding its name to 127.0.0.1 is refused), beyond it any. Also the sites whose "
                        "pages may POST or open a WebSocket (a page of the request's own Host name always may)")
    parser.add_argument("--port", type=number_in(int, 0, 65535), default=8080, help="0: any free port")
    # Each number is checked here: 0 or a negative made a server that refused every request (--max_body_mb 0,
    # --top_k 0), a traceback (--max_batch_size 0, --max_body_mb nan) or one that never answered (--max_wait_ms inf).
    parser.add_argument("--workers", type=positive(int), default=1, help="processes, each with its own model")
    parser.add_argument("--max_batch_size", type=positive(int), default=32,
                        help="windows per model call (1: no batching)")
    parser.add_argument("--max_wait_ms", type=number_in(float, 0, 60000), default=5.0,
                        help="longest wait for a batch to fill (0 to 60000)")
    parser.add_argument("--max_body_mb", type=finite_positive, default=25.0, help="largest request body (413 above)")
    parser.add_argument("--max_seconds", type=finite_positive, default=600.0,
                        help="longest audio accepted (an upload, or one WebSocket message)")
    parser.add_argument("--max_requests", type=positive(int), default=64,
                        help="classifications and streams answered at once per worker (503 `busy` above): each "
                             "may hold a --max_body_mb body and its audio in memory")
    parser.add_argument("--request_timeout", type=finite_positive, default=30.0,
                        help="seconds before a request gets 408")
    parser.add_argument("--shutdown_timeout", type=finite_positive, default=10.0,
                        help="seconds the requests in progress may take after SIGTERM or Ctrl-C before they are "
                             "cancelled (docker stop waits 10)")
    parser.add_argument("--top_k", type=positive(int), default=5,
                        help="labels per answer when the request does not say")
    parser.add_argument("--api_key", default=None, help="require `Authorization: Bearer KEY` on every route but "
                        "/health and the page (default: $HFSPEECH_API_KEY, safer: a command line shows in "
                        "`ps`; none: open)")
    parser.add_argument("--trust_remote_code", action="store_true", help=TRUST_REMOTE_CODE_HELP)
    parser.add_argument("--log_level", type=str.lower, choices=LOG_LEVELS, default="info",
                        help="the server's log lines on stderr, from this level up")
    return parser


def check_address(host: str, port: int) -> None:
    """An address that cannot be listened on (a port another program holds, an unknown host) is one line
    before the model loads, instead of uvicorn's log line and exit code 3 after it. The probe binds as uvicorn
    does (SO_REUSEADDR: a port left in TIME_WAIT by a server just stopped is free), except on Windows, where
    SO_REUSEADDR lets a bind take a port another program listens on: there it binds exclusively."""
    import socket

    option = getattr(socket, "SO_EXCLUSIVEADDRUSE", socket.SO_REUSEADDR)  # (Windows only has the first)
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, option, 1)
            probe.bind((host, port))
    except OSError as error:
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({error.strerror or error})") from None


def warn_if_exposed(host: str, api_key) -> None:
    """Said once, before the model loads, when `--host` reaches beyond this machine (`0.0.0.0`, a LAN address):
    the server answers anyone on the network, over plain HTTP. It used to start without a word, key or not."""
    from hfspeech.serve.access import is_loopback

    if is_loopback(host):
        return
    risk = "over plain HTTP: the API key and the audio cross the network unencrypted (put a TLS proxy in front)" \
        if api_key else "and no API key is set: anyone who can reach it may use the model (set HFSPEECH_API_KEY)"
    print(f"warning: --host {host} listens beyond this machine {risk}", file=sys.stderr)


def check_model_path(model: str) -> None:
    """A model folder that is not there (and cannot be a Hub id) is one line before the server starts: it used
    to be found missing only after uvicorn had started, and with `--workers N` each worker logged it and the
    server went on answering 503 for ever."""
    from hfspeech.models.loading import is_local_path

    if not os.path.exists(model) and is_local_path(model):
        raise UsageError(f"{model}: model folder not found")


def serve(argv: list[str]) -> int:
    args = serve_parser().parse_args(model_first(argv))  # `--model RUN` as evaluate takes it
    check_address(args.host, args.port)
    check_model_path(args.model)

    from hfspeech.inference.loading import backend_for_device
    from hfspeech.serve.app import API_KEY_ENV, ServeSettings, run_server

    backend = backend_for_device(args.model, args.backend, args.device)  # a device not here: one line, now
    settings = ServeSettings(args.model, backend, args.trust_remote_code, args.max_batch_size, args.max_wait_ms,
                             int(args.max_body_mb * 1024 * 1024), args.max_seconds, args.request_timeout, args.top_k,
                             args.api_key or os.environ.get(API_KEY_ENV) or None, args.max_requests, args.device,
                             args.allowed_hosts, shutdown_timeout=args.shutdown_timeout)
    warn_if_exposed(args.host, settings.api_key)
    from hfspeech.serve.limits import bodies_beyond_memory

    if memory_warning := bodies_beyond_memory(args.max_requests, settings.max_body_bytes, args.workers):
        print(memory_warning, file=sys.stderr)
    load_error = run_server(settings, args.host, args.port, args.workers, args.log_level)
    if load_error:
        print_error(load_error)
        return 2
    return 0
