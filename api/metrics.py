"""Prometheus metrics of one API app, in a registry of its own.

A registry per app (not the process-global default) lets tests build several apps in one
process without "duplicated timeseries" errors, and keeps label sets under our control.
Request metrics are labelled by route *template* (``/api/v1/sites/{site}/occupancy``),
never the raw path, and by method from a closed set, so a scan of random URLs or verbs
cannot blow up cardinality.
"""

from __future__ import annotations

import time

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Label for requests that matched no route (404s, scans).
UNMATCHED = "<unmatched>"
#: The only method labels: anything else (``FOOBAR /``, WebDAV verbs) counts as "OTHER".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        r = self.registry
        self.requests = Counter(
            "tp_api_requests_total", "HTTP requests.", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "tp_api_request_duration_seconds",
            "Time to the end of the response (streaming routes excluded).",
            ["method", "route"],
            registry=r,
        )
        self.sse_clients = Gauge("tp_api_sse_clients", "Connected live SSE clients.", registry=r)
        self.sse_dropped = Counter(
            "tp_api_sse_clients_dropped_total",
            "SSE clients disconnected because they could not keep up.",
            registry=r,
        )
        self.live_consumed = Counter(
            "tp_api_live_messages_consumed_total", "Live messages read from Kafka.", registry=r
        )
        self.live_fanned_out = Counter(
            "tp_api_live_messages_fanned_out_total",
            "Live messages queued to SSE clients (one per client per message).",
            registry=r,
        )
        self.live_invalid = Counter(
            "tp_api_live_invalid_messages_total",
            "Kafka messages on the live topic that are not a valid OccupancyUpdateV1.",
            registry=r,
        )
        self.live_resumes = Counter(
            "tp_api_live_resumes_total",
            "Reconnects with Last-Event-ID, by where the missed messages came from.",
            ["source"],
            registry=r,
        )
        self.live_consumer_errors = Counter(
            "tp_api_live_consumer_errors_total",
            "Failures of the live Kafka consumer (it restarts after each).",
            registry=r,
        )


class MetricsMiddleware:
    """Pure ASGI middleware (no buffering, so SSE streams pass through untouched)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, streaming: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.streaming = streaming

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = UNMATCHED
            if isinstance(route, BaseRoute):
                template = getattr(route, "path", UNMATCHED)
            method = scope.get("method", "")
            method = method if method in METHODS else OTHER_METHOD
            self.metrics.requests.labels(method, template, str(status)).inc()
            if template not in self.streaming:
                self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
