"""Abuse limits for the public camera endpoints (tour pages are open to anyone).

Why here and not a gateway: the costly parts are camera-specific (a WebRTC peer, a face
detection pass on a snapshot), so the limits sit next to them: per-IP request rates,
peers per camera and per IP, a snapshot cache so a burst costs one detection, and reading
an SDP offer with a byte budget instead of buffering whatever is sent.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field

from fastapi import Request

from api.errors import ApiError

MAX_SDP_BYTES = 64 * 1024
SNAPSHOT_CACHE_S = 3.0
TRACKED_IPS = 10_000  # bounded memory for the per-IP buckets


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass
class RateLimit:
    """Token bucket per client IP: ``burst`` requests at once, ``per_s`` refill."""

    per_s: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def allow(self, key: str) -> bool:
        now = self.clock()
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.per_s)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > TRACKED_IPS:
            self._buckets.popitem(last=False)
        return allowed

    def check(self, request: Request, what: str) -> None:
        if not self.allow(client_ip(request)):
            raise ApiError(429, "rate_limited", f"too many {what} requests; slow down")


async def read_offer(request: Request, limit: int = MAX_SDP_BYTES) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes (streamed, so
    a huge or endless body is never held in memory)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "offer_too_large", f"SDP offer larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "offer_too_large", f"SDP offer larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class PeerCaps:
    """Live WebRTC peers of one camera, by client IP."""

    per_camera: int
    per_ip: int
    owners: dict[str, str] = field(default_factory=dict)  # session id -> client IP

    def check(self, ip: str, live: Collection[str]) -> None:
        """Refuse a new peer from ``ip``; ``live`` are the sessions still open."""
        self.owners = {sid: owner for sid, owner in self.owners.items() if sid in live}
        if len(self.owners) >= self.per_camera:
            raise ApiError(503, "camera_full", "this camera has its maximum number of viewers")
        if sum(1 for owner in self.owners.values() if owner == ip) >= self.per_ip:
            raise ApiError(429, "too_many_viewers", "too many live views from your address")


@dataclass
class SnapshotCache:
    """One anonymised still per camera for ``ttl`` seconds; concurrent requesters share the
    single computation in flight (face detection takes ~1 s of CPU)."""

    ttl: float = SNAPSHOT_CACHE_S
    clock: Callable[[], float] = time.monotonic
    _value: tuple[float, bytes] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(self, make: Callable[[], Awaitable[bytes]]) -> bytes:
        async with self._lock:
            if self._value is not None and self.clock() - self._value[0] < self.ttl:
                return self._value[1]
            jpeg = await make()
            self._value = (self.clock(), jpeg)
            return jpeg
