"""Prometheus request metrics for the service, at one histogram update per request.

BentoML's own traffic middleware costs about 60 us of a ~430 us ``/recommend`` in process
(five ``labels()`` look-ups, an in-progress gauge up and down, a last-request timestamp, a
counter and a histogram: each a write to a memory-mapped file in ``bentoml serve``'s
multiprocess mode), about a sixth of the request (the in-process ablation in BENCHMARKS.md,
Serving, fifth session).
The service switches it off (configs/serving.yaml ``bentoml_metrics: false``) and records
with this middleware instead:

- ``growthloop_request_duration_seconds{endpoint, status}``: a histogram whose ``_count`` is
  the request count and ``_sum`` the time spent, per API route and HTTP status (the
  request-rate, error-rate and latency of every endpoint). Paths that are not API routes
  are counted under ``endpoint="other"`` so that a scanner cannot grow the label set.
- ``GET /metrics``: the Prometheus text exposition, summed over all worker processes when
  ``PROMETHEUS_MULTIPROC_DIR`` is set (``bentoml serve`` sets it for every worker).

Health, readiness and ``/metrics`` itself are not recorded, as in BentoML. Every API route
is exported from the start with status 200 at zero, so that ``rate()`` has a first point.
"""

from __future__ import annotations

import asyncio
import functools
import os
from time import perf_counter

from serving.guard import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    host_refusal,
    respond,
    shaped_error,
)

METRICS_PATH = "/metrics"
ALLOWED = b"GET, HEAD"  # methods /metrics answers
UNRECORDED = frozenset({METRICS_PATH, "/healthz", "/livez", "/readyz"})
OTHER = "other"
# Prometheus' default buckets, with 2.5 ms added: most answers of /recommend take 1-5 ms.
BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75,
           1.0, 2.5, 5.0, 7.5, 10.0)


@functools.cache
def request_histogram():
    """The histogram, created once per process (a second app in one process, as in tests,
    shares it instead of registering it twice)."""
    from prometheus_client import Histogram

    return Histogram("growthloop_request_duration_seconds",
                     "Time from request to the end of the response, per API route and "
                     "HTTP status", ["endpoint", "status"], buckets=BUCKETS)


def exposition() -> tuple[bytes, str]:
    """The metrics text and its content type, all workers summed in multiprocess mode."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
    )
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class RequestMetrics:
    """ASGI middleware: answers ``GET /metrics`` and times every other HTTP request. It sits
    outside the request guard (the guard's answers are counted too), so it refuses a
    ``/metrics`` request addressed to a host name the guard would refuse (``hosts``)."""

    def __init__(self, app: ASGIApp, routes: tuple[str, ...],
                 hosts: frozenset[str] | None = None) -> None:
        self.app = app
        self.hosts = hosts
        self.routes = frozenset(routes)
        self.histogram = request_histogram()
        self.children: dict[tuple[str, int], object] = {}  # labels() once per pair
        for route in self.routes:  # every route shows from the start, at 0 (for rate())
            self._child(route, 200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path == METRICS_PATH:
            if refusal := host_refusal(scope, self.hosts):
                return await respond(send, 403, refusal)
            if scope["method"] in ("GET", "HEAD"):
                return await self._metrics(send, head=scope["method"] == "HEAD")
            return await respond(send, 405, shaped_error(
                405, b"Method Not Allowed", scope["method"], path, ALLOWED),
                headers=((b"allow", ALLOWED),))
        if path in UNRECORDED:
            return await self.app(scope, receive, send)
        endpoint = path if path in self.routes else OTHER
        status = 500  # what the client sees if the app fails before answering
        started = perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self._child(endpoint, status).observe(perf_counter() - started)

    def _child(self, endpoint: str, status: int):
        child = self.children.get((endpoint, status))
        if child is None:
            child = self.children[(endpoint, status)] = self.histogram.labels(
                endpoint=endpoint, status=str(status))
        return child

    @staticmethod
    async def _metrics(send: Send, head: bool = False) -> None:
        body, content_type = await asyncio.to_thread(exposition)  # reads every worker's file
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": b"" if head else body})
