"""Prometheus metrics (`/metrics`): requests by route and status, latency, batch sizes, errors by kind (and a
model that failed to load, `kind="model_load"`).

Each app gets its own registry (several servers in one test process do not collide). With `--workers N`
the CLI points PROMETHEUS_MULTIPROC_DIR at a fresh folder before the workers start, every worker writes its
samples there, and `/metrics` adds them up (prometheus_client's multiprocess mode), so a scrape sees the
whole server, not the one worker that happened to answer. The files of workers that died are merged, and the
folders of supervisors that were killed removed, by `metrics_folder`.
"""

from __future__ import annotations

import logging
import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.responses import Response

from hfspeech.serve.errors import ApiError, error_response
from hfspeech.serve.metrics_folder import dead_workers_merged, scrape_lock

logger = logging.getLogger("hfspeech.serve")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
ROUTES = ("/", "/health", "/info", "/metrics", "/stream", "/favicon.ico")
MODEL_LOAD = "model_load"  # the `kind` of `hfspeech_errors_total` counting models that failed to load


def route_name(path: str) -> str:
    """The `route` label of a request to `path`: one of the server's routes, else "other" (a label per
    unknown path a client makes up would grow the metrics without end)."""
    return path if path in ROUTES else "other"


class ServerMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("hfspeech_requests", "HTTP requests answered", ["route", "status"],
                                registry=self.registry)
        self.latency = Histogram("hfspeech_request_seconds", "Time from request to answer", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("hfspeech_batch_size", "Windows per model batch", buckets=BATCH_BUCKETS,
                                    registry=self.registry)
        self.errors = Counter("hfspeech_errors", "Requests refused or failed, by kind", ["kind"],
                              registry=self.registry)
        # At 0 from the start, so that `increase()` sees the first failure (a series born at 1 shows no increase)
        self.errors.labels(MODEL_LOAD)

    def model_load_failed(self) -> None:
        """Counted once per failed load (per worker): /health's 503 is not an error (`counts_as_error`), so a
        server that would never be ready showed nothing an error alert could fire on."""
        self.errors.labels(MODEL_LOAD).inc()

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def response(self) -> Response:
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not folder:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
        if not os.path.isdir(folder):
            return folder_gone(folder)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        dead_workers_merged(folder)  # also those replaced while this worker ran (SIGHUP starts new ones first)
        with scrape_lock(folder):  # not while a restarted worker merges its predecessors' files (metrics_folder.py)
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def folder_gone(folder: str) -> Response:
    """The multiprocess folder removed under a running server (a cleaner of the temporary folder, `rm -rf`):
    prometheus_client's ValueError was a 500 with its traceback in the log at every scrape. One line each, and
    the server's error JSON; the counts are lost, and come back only with a restarted server (a new folder)."""
    logger.error("error: /metrics: the metrics folder %s is gone (removed while the server runs); restart the "
                 "server to count again", folder)
    return error_response(ApiError(500, "metrics_folder_missing", f"the metrics folder {folder} is gone (removed "
                                   "while the server runs): restart the server to count again"))


def counts_as_error(route: str, status: int) -> bool:
    """Whether an answer is counted in `hfspeech_errors_total`: a 4xx or 5xx, except `/health`'s 503 while the
    model loads (or failed to), which is the readiness probe saying "not yet", not a request that went wrong (it
    was counted as `http_503`, dozens per start-up, and error alerts tripped on every restart). It is still in
    `hfspeech_requests_total{route="/health",status="503"}`."""
    return status >= 400 and not (route == "/health" and status == 503)
