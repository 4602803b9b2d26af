"""Caps on open SSE/WebSocket streams: in total and per client address.

A stream holds a queue of up to ``live_client_queue`` messages and a task for as long as
the client likes, so unbounded streams are unbounded memory. Refusing happens before the
stream starts (a started stream cannot turn into an error response); the slot is freed
when the stream ends, however it ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.requests import HTTPConnection, Request

from api.errors import ApiError


@dataclass
class StreamLimiter:
    max_total: int
    max_per_ip: int
    registry: CollectorRegistry
    _per_ip: dict[str, int] = field(default_factory=dict, init=False)
    total: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.open_gauge = Gauge(
            "tp_api_streams_open", "Open SSE/WebSocket streams.", registry=self.registry
        )
        self.refused = Counter(
            "tp_api_streams_refused_total",
            "Streams refused by a cap (reason: total or per_ip).",
            ["reason"],
            registry=self.registry,
        )

    def acquire(self, ip: str) -> None:
        """Take a slot for ``ip`` or raise an :class:`ApiError` (503 full, 429 per IP)."""
        if self.total >= self.max_total:
            self.refused.labels("total").inc()
            raise ApiError(
                503,
                "too_many_streams",
                "the server has as many live streams open as it serves; retry later",
                headers={"Retry-After": "30"},
            )
        if self._per_ip.get(ip, 0) >= self.max_per_ip:
            self.refused.labels("per_ip").inc()
            raise ApiError(
                429,
                "too_many_streams",
                f"at most {self.max_per_ip} live streams per client address",
                headers={"Retry-After": "30"},
            )
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        self.total += 1
        self.open_gauge.set(self.total)

    def release(self, ip: str) -> None:
        left = self._per_ip.get(ip, 0) - 1
        if left > 0:
            self._per_ip[ip] = left
        else:
            self._per_ip.pop(ip, None)
        self.total -= 1
        self.open_gauge.set(self.total)

    @asynccontextmanager
    async def slot(self, ip: str) -> AsyncIterator[None]:
        self.acquire(ip)
        try:
            yield
        finally:
            self.release(ip)


def client_ip(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else "unknown"


async def stream_slot(request: Request) -> AsyncIterator[None]:
    """Dependency of streaming routes: holds a slot until the response has been sent."""
    limiter: StreamLimiter = request.app.state.streams
    async with limiter.slot(client_ip(request)):
        yield
