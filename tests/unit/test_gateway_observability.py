"""core.observability: /metrics and /healthz served from a daemon thread on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from core.observability import Health, ObservabilityServer


class Toggle:
    """A health check whose verdict the test flips."""

    def __init__(self) -> None:
        self.ok = True
        self.raise_error = False

    def __call__(self) -> Health:
        if self.raise_error:
            raise RuntimeError("probe exploded")
        return Health(self.ok, {"mqtt": "connected" if self.ok else "down"})


@pytest.fixture
def served() -> Iterator[tuple[ObservabilityServer, Toggle, Counter]]:
    registry = CollectorRegistry()
    counter = Counter("tp_test_things", "things seen", registry=registry)
    check = Toggle()
    server = ObservabilityServer(0, check, registry).start()
    try:
        yield server, check, counter
    finally:
        server.stop()


def test_metrics_are_prometheus_text(served: tuple[ObservabilityServer, Toggle, Counter]) -> None:
    server, _, counter = served
    counter.inc(3)
    resp = httpx.get(f"{server.url}/metrics", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert "tp_test_things_total 3.0" in resp.text


def test_health_reports_verdict_and_details(
    served: tuple[ObservabilityServer, Toggle, Counter],
) -> None:
    server, check, _ = served
    ok = httpx.get(f"{server.url}/healthz", timeout=10)
    assert ok.status_code == 200
    assert ok.json() == {"status": "ok", "details": {"mqtt": "connected"}}
    check.ok = False
    bad = httpx.get(f"{server.url}/healthz", timeout=10)
    assert bad.status_code == 503
    assert bad.json()["status"] == "unhealthy"
    check.raise_error = True
    boom = httpx.get(f"{server.url}/healthz", timeout=10)
    assert boom.status_code == 503
    assert "probe exploded" in json.dumps(boom.json())


def test_unknown_path_is_404_and_stop_releases_port(
    served: tuple[ObservabilityServer, Toggle, Counter],
) -> None:
    server, check, _ = served
    assert httpx.get(f"{server.url}/nope", timeout=10).status_code == 404
    port = server.port
    server.stop()
    again = ObservabilityServer(port, check, CollectorRegistry()).start()
    try:
        assert httpx.get(f"{again.url}/healthz", timeout=10).status_code == 200
    finally:
        again.stop()


def test_taken_port_is_a_clear_oserror(
    served: tuple[ObservabilityServer, Toggle, Counter],
) -> None:
    server, check, _ = served
    with pytest.raises(OSError):
        ObservabilityServer(server.port, check, CollectorRegistry()).start()
