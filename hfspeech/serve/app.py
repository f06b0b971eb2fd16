"""The Starlette app: routes, the API key check, metrics, limits, and running it with uvicorn.

    POST /          audio classification, the Hub's task contract (raw bytes, or JSON with base64 `inputs`)
    GET  /          the web page (static/index.html: upload or record, top-k bars, timeline)
    GET  /health    200 once the model is loaded, 503 while it loads (or if it failed)
    GET  /info      labels, sampling rate, backend, model revision, limits
    GET  /metrics   Prometheus
    WS   /stream    live PCM in, label events out (POST /stream: the same over one streamed body)

Every error is `{"error", "kind"}` JSON with a 4xx/5xx status (`hfspeech.serve.errors`); an unexpected
exception is logged on the server and answered as a bare 500, never with its traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from importlib.resources import files
from typing import Optional

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from hfspeech.serve.access import HostCheckMiddleware, api_key_given, names_to_answer, refuse
from hfspeech.serve.connections import HEADER_TIMEOUT_ENV, PROTOCOL, with_header_timeout
from hfspeech.serve.disconnects import unless_client_leaves
from hfspeech.serve.environment import METRICS_DIR_ENV, set_for_workers
from hfspeech.serve.errors import ERROR_KIND_HEADER, ApiError, error_response, send_error
from hfspeech.serve.limits import more_open_files, quiet_accept_errors, quiet_accept_errors_in_this_process
from hfspeech.serve.log_redaction import redact_api_keys_in_logs
from hfspeech.serve.metrics import ServerMetrics, counts_as_error, route_name
from hfspeech.serve.metrics_folder import (check_users_folder, dead_workers_merged,
                                           keep_alive_while_this_process_lives, remove_orphaned_folders)
from hfspeech.serve.payload import parse_request, read_body
from hfspeech.serve.runner import ModelRunner
from hfspeech.serve.stream import open_stream, stream_post, stream_websocket

logger = logging.getLogger("hfspeech.serve")
SETTINGS_ENV = "HFSPEECH_SERVE_SETTINGS"  # how `--workers N` hands the settings to each worker process
API_KEY_ENV = "HFSPEECH_API_KEY"
OPEN_PATHS = ("/health", "/static/", "/favicon.ico")  # no key needed: the probe, and the page's own files
STATIC = files("hfspeech.serve") / "static"
# The page loads only the server's own files, and no other site may frame it (and its API key field)
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff"}


@dataclass
class ServeSettings:
    model: str
    backend: Optional[str] = None
    trust_remote_code: bool = False
    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_body_bytes: int = 25 * 1024 * 1024
    max_seconds: float = 600.0
    request_timeout: float = 30.0
    top_k: int = 5
    api_key: Optional[str] = None
    max_requests: Optional[int] = 64  # per worker: each may hold a body of --max_body_mb and its decoded audio
    device: Optional[str] = None  # where each worker's PyTorch model runs (None: a GPU when there is one)
    allowed_hosts: Optional[list] = None  # Host names answered and page names that may POST (None: any Host; access.py)
    shutdown_timeout: float = 10.0  # after SIGTERM, requests still running then are cancelled (docker stop: 10 s)


class Endpoints:
    """The routes' handlers, around one `ModelRunner`: classification and streaming bounded by the request
    timeout, the page, health (503 while loading), model info and Prometheus metrics."""

    def __init__(self, settings: ServeSettings, runner: ModelRunner, metrics: ServerMetrics):
        self.settings, self.runner, self.metrics = settings, runner, metrics

    async def within_timeout(self, work):
        try:
            return await asyncio.wait_for(work, self.settings.request_timeout)
        except asyncio.TimeoutError:
            if self.runner.classifier is None and self.runner.load_error is None:  # audit MX: Whisper loads > 2 min
                raise ApiError(503, "not_ready", f"the model is still loading ({self.settings.request_timeout:g} s "
                               "waited); GET /health answers 200 once it has loaded") from None
            raise ApiError(408, "timeout", f"request took longer than {self.settings.request_timeout:g} s "
                           "(a body that stopped arriving, or the server is overloaded)") from None

    async def classify(self, request: Request) -> Response:
        async def answer():
            await self.runner.wait_ready()
            body = await read_body(request, self.settings.max_body_bytes)
            audio, parameters = parse_request(request.headers.get("content-type"), body,
                                              dict(request.query_params), self.settings.top_k)
            return JSONResponse(await unless_client_leaves(request, self.runner.classify(audio, parameters)))

        return await self.within_timeout(answer())

    async def page(self, request: Request) -> Response:
        return Response((STATIC / "index.html").read_text(encoding="utf-8"), media_type="text/html",
                        headers=PAGE_HEADERS)

    async def favicon(self, request: Request) -> Response:
        """No icon (204): a browser asks for one on every page it opens, which was a 404 in its console and in
        `hfspeech_errors_total` (a 401 where the server needs a key)."""
        return Response(status_code=204)

    async def health(self, request: Request) -> Response:
        if self.runner.ready:
            return JSONResponse({"status": "ok"})
        status = "error" if self.runner.load_error else "loading"
        return JSONResponse({"status": status}, status_code=503)

    async def info(self, request: Request) -> Response:
        await self.runner.wait_ready()
        return JSONResponse(self.runner.info())

    async def metrics_page(self, request: Request) -> Response:
        return self.metrics.response()

    async def stream(self, request: Request) -> Response:
        live = await self.within_timeout(open_stream(self.runner, request.query_params))  # the model may load
        return await stream_post(request, live, self.runner, self.settings.max_body_bytes,
                                 self.settings.request_timeout)

    async def root(self, request: Request) -> Response:
        """GET: the page, POST: classify. One route, so that `DELETE /` is told both methods in its `Allow`
        (two routes on "/" answered `Allow: HEAD, GET`, as if POST were not served)."""
        return await (self.classify if request.method == "POST" else self.page)(request)

    def routes(self) -> list:
        return [Route("/", self.root, methods=["GET", "POST"]),
                Route("/health", self.health), Route("/info", self.info), Route("/metrics", self.metrics_page),
                Route("/stream", self.stream, methods=["POST"]), Route("/favicon.ico", self.favicon),
                WebSocketRoute("/stream", lambda ws: stream_websocket(ws, self.runner,
                                                                        self.settings.request_timeout)),
                Mount("/static", StaticFiles(directory=str(STATIC)), name="static")]


def create_app(settings: ServeSettings) -> Starlette:
    redact_api_keys_in_logs()  # `?api_key=` of a WebSocket was logged in clear with the request line
    runner = ModelRunner(settings.model, settings.backend, settings.trust_remote_code, settings.max_batch_size,
                         settings.max_wait_ms, settings.max_seconds, device=settings.device)
    metrics = ServerMetrics()
    runner.batcher.on_batch, runner.on_load_error = metrics.batch_size.observe, metrics.model_load_failed

    @contextlib.asynccontextmanager
    async def lifespan(app):
        runner.start_loading()
        yield
        await runner.batcher.stop()
        runner.decoder.shutdown(wait=False, cancel_futures=True)  # its threads left with the app (R5: one per app)

    app = Starlette(routes=Endpoints(settings, runner, metrics).routes(), lifespan=lifespan,
                    exception_handlers={ApiError: lambda request, error: error_response(error),
                                        HTTPException: routing_error})
    app.state.runner = runner
    app.add_middleware(GuardMiddleware, metrics=metrics, api_key=settings.api_key, max_requests=settings.max_requests)
    # outermost: a rebinding page learns nothing, not even a 401; another site's POST is refused on any address
    app.add_middleware(HostCheckMiddleware, allowed_hosts=settings.allowed_hosts, metrics=metrics)
    return app


def routing_error(request: Request, error: HTTPException) -> Response:
    """Starlette's own 404 and 405 (an unknown path, a wrong method) in the server's error shape: they were
    plain text (`Not Found`), the one answer that was not `{"error", "kind"}` JSON."""
    path, allowed = request.url.path, (error.headers or {}).get("Allow", "")
    if error.status_code == 404:
        kind, message = "not_found", f"no route {path!r}: the routes are GET and POST /, GET /health, /info, " \
            "/metrics, POST or WebSocket /stream"
    elif error.status_code == 405:
        also = ", or a WebSocket" if path == "/stream" else ""
        kind, message = "method_not_allowed", f"{request.method} is not allowed on {path!r} (allowed: {allowed}{also})"
    else:
        kind, message = f"http_{error.status_code}", str(error.detail)
    response = error_response(ApiError(error.status_code, kind, message))
    response.headers.update(error.headers or {})  # 405's Allow
    return response


class GuardMiddleware:
    """Around every route: the API key, the error JSON for anything that escapes a route (before Starlette's
    own plain-text 500 could), and the request metrics."""

    def __init__(self, app, metrics: ServerMetrics, api_key: Optional[str], max_requests: Optional[int] = None):
        self.app, self.metrics, self.api_key = app, metrics, api_key
        self.max_requests, self.in_flight = max_requests, 0  # classifications and streams being answered now

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope["path"]
        page = path == "/" and scope.get("method") in ("GET", "HEAD")  # HEAD: a link checker's look at the page
        if self.api_key and not path.startswith(OPEN_PATHS) and not page:
            if not self.authorized(scope):
                return await refuse(scope, receive, send, ApiError(401, "unauthorized", "missing or wrong API "
                                    "key: send `Authorization: Bearer <key>`"), self.metrics)
        work = scope["type"] == "websocket" or scope.get("method") == "POST"  # holds a body, audio, the model
        if work and self.max_requests and self.in_flight >= self.max_requests:
            busy = ApiError(503, "busy", f"server busy: {self.in_flight} requests in progress, the most it takes "
                            "at once (--max_requests); retry")
            return await refuse(scope, receive, send, busy, self.metrics)
        handle = self.app if scope["type"] == "websocket" else self.answer
        self.in_flight += work
        try:
            await handle(scope, receive, send)
        finally:
            self.in_flight -= work

    async def answer(self, scope, receive, send):
        """The route's answer, recorded in the metrics; an exception escaping it answered as error JSON."""
        path = scope["path"]
        started = time.perf_counter()
        sent = {"status": 500, "kind": None, "started": False}

        async def send_and_record(message):
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                sent.update(status=message["status"], started=True,
                            kind=headers.get(ERROR_KIND_HEADER.lower().encode(), b"").decode() or None)
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        except asyncio.CancelledError:  # past --shutdown_timeout uvicorn cancels it: 500 and a traceback were sent
            if not sent["started"]:
                await send_error(scope, receive, send_and_record, ApiError(503, "shutting_down", "the server is "
                                 "stopping; send the request again (to another instance)"))
        except Exception as error:  # ApiError raised past the router, or a bug: logged with its traceback
            if not isinstance(error, ApiError):
                logger.exception("unexpected error answering %s %s", scope.get("method"), path)
                error = ApiError(500, "internal", "internal server error")
            if not sent["started"]:  # else the client sees the answer cut short
                await send_error(scope, receive, send_and_record, error)
        self.metrics.observe_request(route_name(path), sent["status"], time.perf_counter() - started)
        if counts_as_error(route_name(path), sent["status"]):
            self.metrics.errors.labels(sent["kind"] or f"http_{sent['status']}").inc()

    def authorized(self, scope) -> bool:
        given = api_key_given(scope)
        return bool(given) and hmac.compare_digest(given.encode(), self.api_key.encode())


def app_from_env() -> Starlette:
    """The app factory each `--workers N` process calls (the settings travel in an environment variable)."""
    quiet_accept_errors_in_this_process()  # out of file descriptors: a line every few seconds (limits.py)
    keep_alive_while_this_process_lives(os.environ.get(METRICS_DIR_ENV))  # the folder outlives a killed supervisor
    dead_workers_merged(os.environ.get(METRICS_DIR_ENV))  # a worker restarted: its predecessor's files, merged
    return create_app(ServeSettings(**json.loads(os.environ[SETTINGS_ENV])))


def run_server(settings: ServeSettings, host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
               log_level: str = "info") -> Optional[str]:
    """Serve until interrupted: one process, or `workers` processes on one socket, each with its own model.
    Returns why the model did not load, if it did not (one process; workers log it)."""
    settings = replace(settings, allowed_hosts=names_to_answer(host, settings.allowed_hosts))  # loopback: its names
    # NO_COLOR: uvicorn coloured its log on a terminal whatever it said (None: its choice, colour on a terminal)
    options = dict(host=host, port=port, log_level=log_level, http=PROTOCOL, timeout_graceful_shutdown=
                   settings.shutdown_timeout, use_colors=False if os.environ.get("NO_COLOR") else None)
    check_users_folder()  # a PROMETHEUS_MULTIPROC_DIR of the user's that is gone
    with more_open_files(), quiet_accept_errors():  # each connection holds a descriptor; workers inherit the limit
        return _run(settings, options, workers)


def _run(settings: ServeSettings, options: dict, workers: int) -> Optional[str]:
    import uvicorn

    if workers <= 1:  # a connection's deadline for its headers: this server's own (workers: in the environment)
        app = create_app(settings)
        protocol = with_header_timeout(settings.request_timeout)
        server = uvicorn.Server(uvicorn.Config(app, **{**options, "http": protocol}))
        app.state.runner.on_load_failure = lambda: setattr(server, "should_exit", True)
        server.run()
        return app.state.runner.load_error
    passed_on = {HEADER_TIMEOUT_ENV: str(settings.request_timeout), SETTINGS_ENV: json.dumps(asdict(settings))}
    remove_orphaned_folders()  # killed servers' metrics folders: nobody holds them alive (metrics_folder.py)
    from hfspeech.serve.worker_supervision import dead_workers_seen_at_once  # uvicorn's supervisor: workers only

    with set_for_workers(passed_on, workers=workers), dead_workers_seen_at_once():
        # A worker imports torch and loads its model before it answers uvicorn's health pings: allow a minute
        # (the default 5 s kills workers that are merely slow to start on a busy machine); a worker that died
        # is still replaced at once (`worker_supervision`).
        uvicorn.run("hfspeech.serve.app:app_from_env", factory=True, workers=workers, timeout_worker_healthcheck=60,
                    **options)
    return None
