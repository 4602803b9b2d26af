"""Prometheus ``/metrics`` and JSON ``/healthz`` for any long-running TourPulse process.

Edge agents and the ingest gateway are plain threaded programs, so pulling in a web framework
just for two read-only endpoints would cost more (dependencies, an event loop, start-up time)
than it gives. This serves both from the standard library's ``ThreadingHTTPServer`` in a daemon
thread, so it never blocks or outlives the service it reports on.

Usage::

    server = ObservabilityServer(port=9101, health=lambda: Health(ok, {"mqtt": "connected"}),
                                 registry=my_registry)
    server.start()          # port=0 picks a free port; read it back from server.port
    ...
    server.stop()

``/healthz`` answers 200 with ``{"status": "ok", "details": {...}}`` when healthy and 503 with
``"status": "unhealthy"`` otherwise, so both humans and orchestrators (curl -f, k8s probes)
can use it. A health callable that raises is reported as unhealthy, never as a crash.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    """A service's health: one verdict plus JSON-serialisable details for a human."""

    ok: bool
    details: dict[str, Any] = field(default_factory=dict)


HealthCheck = Callable[[], Health]


class ObservabilityServer:
    """Serves ``/metrics`` (Prometheus text format) and ``/healthz`` (JSON) on one port.

    Binds to loopback by default: metrics and health are for the local scraper or the
    operator, never for the internet.
    """

    def __init__(
        self,
        port: int,
        health: HealthCheck,
        registry: CollectorRegistry = REGISTRY,
        host: str = "127.0.0.1",
    ) -> None:
        self._requested = (host, port)
        self._health = health
        self._registry = registry
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when started with ``port=0``)."""
        if self._httpd is None:
            raise RuntimeError("observability server is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._requested[0]}:{self.port}"

    def start(self) -> ObservabilityServer:
        """Bind and serve in a daemon thread; raise ``OSError`` if the port is taken."""
        handler = _make_handler(self._health, self._registry)
        self._httpd = ThreadingHTTPServer(self._requested, handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="observability-http", daemon=True
        )
        self._thread.start()
        log.info("metrics and health on %s/metrics and %s/healthz", self.url, self.url)
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None


def _make_handler(health: HealthCheck, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif path == "/healthz":
                status, body = health_response(health)
                self._send(status, "application/json", body)
            else:
                self._send(404, "application/json", b'{"error": "not found"}')

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            # Scrapes every few seconds would drown the service's own log.
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


def health_response(health: HealthCheck) -> tuple[int, bytes]:
    """HTTP status and JSON body for a health check; a failing check is a 503, not a crash."""
    try:
        result = health()
    except Exception as exc:
        log.warning("health check raised: %s", exc)
        result = Health(False, {"error": f"health check raised {type(exc).__name__}: {exc}"})
    body = {"status": "ok" if result.ok else "unhealthy", "details": result.details}
    return (200 if result.ok else 503), json.dumps(body, default=str).encode()
