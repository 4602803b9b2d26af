"""Abuse limits in isolation: login throttle arithmetic, the hashing gate, stream tickets,
query-free access logs, closed metric labels, bounded anonymous replays."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from api.config import ApiTuning
from api.errors import install_error_handlers
from api.ioc.tickets import TicketBook, TicketError
from api.live.consumer import LiveFeed
from api.live.hub import Hub, LiveMessage
from api.live.stream import live_events
from api.metrics import ApiMetrics, MetricsMiddleware
from api.security.access_log import StripQueryFilter
from api.security.body import BodyLimitMiddleware
from api.security.hashing import HashGate, HashingBusy
from api.security.throttle import LoginThrottle


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ip_bucket_allows_a_burst_then_at_most_the_sustained_rate() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(rate_per_s=0.5, burst=5, clock=clock)
    allowed = 0
    # An attacker trying 20 times a second for 10 minutes, each time as a new user.
    for i in range(20 * 600):
        clock.now += 0.05
        if throttle.retry_after("203.0.113.9", f"user{i}") == 0:
            allowed += 1
    rate = allowed / 600
    assert rate <= 1.0, rate
    assert allowed <= 5 + 0.5 * 600 + 1
    # Another address is not affected by the first one's bucket.
    assert throttle.retry_after("198.51.100.1", "olga") == 0


def test_user_backoff_doubles_after_free_failures_and_resets_on_success() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(rate_per_s=1000, burst=1000, free_failures=3, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1", "olga") == 0
        throttle.failed("olga")
    assert throttle.retry_after("10.0.0.2", "olga") == 0  # 3 free failures
    throttle.failed("olga")  # 4th: blocked 1 s, from any address
    assert throttle.retry_after("10.0.0.3", "olga") == pytest.approx(1.0)
    clock.now += 1.0
    throttle.failed("olga")  # 5th: 2 s
    assert throttle.retry_after("10.0.0.4", "olga") == pytest.approx(2.0)
    for _ in range(40):
        throttle.failed("olga")
    assert throttle.retry_after("10.0.0.5", "olga") == pytest.approx(throttle.max_backoff_s)
    throttle.succeeded("olga")
    assert throttle.retry_after("10.0.0.6", "olga") == 0


def test_throttle_tables_are_bounded() -> None:
    throttle = LoginThrottle(max_entries=100)
    for i in range(1000):
        throttle.retry_after(f"10.0.{i // 256}.{i % 256}", f"u{i}")
        throttle.failed(f"u{i}")
    assert len(throttle._ips) == 100 and len(throttle._users) == 100


async def test_hash_gate_bounds_concurrent_hashing_and_refuses_a_flood() -> None:
    gate = HashGate(slots=2, max_waiting=4)
    release = threading.Event()
    running = 0
    peak = 0
    lock = threading.Lock()

    def work() -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(5)
        with lock:
            running -= 1
        return 1

    tasks = [asyncio.create_task(gate.run(work)) for _ in range(6)]
    await asyncio.sleep(0.2)
    with pytest.raises(HashingBusy):
        await gate.run(work)
    release.set()
    assert sum(await asyncio.gather(*tasks)) == 6
    assert peak == 2 and gate.peak == 2


def test_stream_ticket_is_single_use_short_lived_and_not_a_bearer_token() -> None:
    book = TicketBook("x" * 48)
    ticket = book.issue("olga", time.time() + 3600)
    grant = book.redeem(ticket)
    assert grant.username == "olga"
    with pytest.raises(TicketError, match="already used"):
        book.redeem(ticket)
    with pytest.raises(TicketError, match="invalid"):
        TicketBook("y" * 48).redeem(book.issue("olga", time.time() + 3600))
    import jwt

    # A ticket is not accepted where an access token is (no audience there), and an
    # access token (no audience) is not a ticket.
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(book.issue("olga", 0), "x" * 48, algorithms=["HS256"])
    access = jwt.encode(
        {"sub": "olga", "iss": "tourpulse-ioc", "iat": time.time(), "exp": time.time() + 60},
        "x" * 48,
        algorithm="HS256",
    )
    with pytest.raises(TicketError):
        book.redeem(access)


def test_access_log_drops_query_strings() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("10.0.0.9:5555", "GET", "/portal/?clientmac=aa:bb:cc:dd:ee:ff&fas=secret", "1.1", 200),
        None,
    )
    assert StripQueryFilter().filter(record)
    line = record.getMessage()
    assert "aa:bb" not in line and "secret" not in line
    assert "GET /portal/?<redacted> HTTP/1.1" in line


def _small_app(max_body: int = 1024) -> tuple[FastAPI, ApiMetrics]:
    app = FastAPI()
    metrics = ApiMetrics()
    install_error_handlers(app)

    @app.post("/echo")
    async def echo(payload: dict[str, str]) -> dict[str, int]:
        return {"keys": len(payload)}

    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body)
    app.add_middleware(MetricsMiddleware, metrics=metrics, streaming=frozenset())
    return app, metrics


async def test_body_limit_refuses_declared_and_streamed_oversize_bodies() -> None:
    app, _ = _small_app(1024)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        ok = await client.post("/echo", json={"a": "b"})
        assert ok.status_code == 200
        big = await client.post("/echo", json={"a": "x" * 5000})
        assert big.status_code == 413
        assert big.json()["error"]["code"] == "payload_too_large"

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"a": "'
            for _ in range(10):
                yield b"x" * 500
            yield b'"}'

        streamed = await client.post(
            "/echo", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert streamed.json()["error"]["code"] == "payload_too_large"


async def test_unknown_methods_and_paths_do_not_create_metric_labels() -> None:
    app, metrics = _small_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        for i in range(50):
            await client.request(f"X{i}METHOD", f"/random/{i}")
    families = {
        s.labels["method"]
        for m in metrics.registry.collect()
        for s in m.samples
        if s.name == "tp_api_requests_total"
    }
    assert families == {"OTHER"}
    routes = {
        s.labels["route"]
        for m in metrics.registry.collect()
        for s in m.samples
        if s.name == "tp_api_requests_total"
    }
    assert routes == {"<unmatched>"}


def _msg(offset: int, site: str) -> LiveMessage:
    return LiveMessage(0, offset, site, f'{{"site":"{site}","n":{offset}}}')


async def test_anonymous_resume_is_bounded_and_replays_are_rationed() -> None:
    """A crafted Last-Event-ID far in the past must not start a Kafka replay: beyond the
    anonymous bound the client gets a snapshot (and the feed points at an unreachable
    broker, so any replay attempt would fail differently and be counted as such)."""
    metrics = ApiMetrics()
    hub = Hub(metrics, ring_size=10, client_queue=100)
    feed = LiveFeed("127.0.0.1:1", "unused", hub, metrics, prime_messages=0, replay_slots=1)
    hub.start_at({0: 0})
    for offset in range(1000):
        hub.publish(_msg(offset, "a" if offset % 2 else "b"))
    started = time.monotonic()
    stream = live_events(feed, ApiTuning(), None, "0-0", replay_max=500)
    events = []
    async for event in stream:
        if event.id is not None:
            events.append(event)
            if len(events) == 2:
                break
    await stream.aclose()
    assert time.monotonic() - started < 2  # no consumer was started
    assert {e.id for e in events} == {"0-1000"}  # the snapshot
    assert metrics.live_resumes.labels("snapshot")._value.get() == 1
    # Replay slots: when they are all taken, a resume within the bound gets a snapshot too.
    feed.replays_running = 1
    stream = live_events(feed, ApiTuning(), None, "0-985", replay_max=500)
    first = None
    async for event in stream:
        if event.id is not None:
            first = event
            break
    await stream.aclose()
    assert first is not None and first.id == "0-1000"
    assert metrics.live_resumes.labels("snapshot")._value.get() == 2
