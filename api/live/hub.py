"""Broadcast hub: one Kafka reader in, many SSE clients out, none able to stall another.

Each client owns a bounded queue. Publishing never awaits: a client whose queue is full
is dropped (its stream ends, the browser reconnects with ``Last-Event-ID`` and resumes),
so one phone on a bad 3G link cannot hold back the map of everyone else.

The hub also keeps what a new or returning client needs without touching Kafka: the
latest message per site (the snapshot) and a ring of recent messages (fast resume).
All methods are synchronous and run on the event loop, so ``subscribe`` sees a
consistent cut: every message is either in the ring copy it returns or goes into the
new client's queue, never both and never neither.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from api.live.positions import LiveMetrics, Positions

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveMessage:
    """One validated message and where it sits in Kafka.

    ``partition`` is a feed partition: for a feed over several topics, topic ``i``'s
    partition ``p`` is ``i * PARTITION_STRIDE + p`` (see :mod:`api.live.positions`).
    """

    partition: int
    offset: int
    site: str
    data: str  # the payload as compact JSON, exactly what SSE clients receive
    kind: str = "occupancy"  # the SSE event name
    at: float = 0.0  # Kafka record timestamp (s): when the state was produced
    keep_latest: bool = True  # part of the snapshot (states yes, alert changes no)


#: Put in a client's queue to end its stream (dropped as too slow, or shutdown).
END = None
#: Feed partition of status messages: outside every Kafka position, never in an event id.
STATUS_PARTITION = -1


@dataclass(eq=False)
class LiveClient:
    queue: asyncio.Queue[LiveMessage | None]
    site: str | None
    dropped: bool = False


@dataclass(frozen=True)
class Subscription:
    """What a new client gets, all taken at one instant."""

    client: LiveClient
    positions: Positions  # hub position: later messages arrive in the client's queue
    ring: list[LiveMessage]  # recent messages, oldest first, all below ``positions``
    ring_floor: Positions  # per partition, the ring holds every message from here on
    latest: list[LiveMessage]  # newest message per site (the snapshot)


@dataclass
class Hub:
    metrics: LiveMetrics
    ring_size: int
    client_queue: int
    positions: Positions = field(default_factory=dict)
    ring_floor: Positions = field(default_factory=dict)
    ready: bool = False
    _ring: deque[LiveMessage] = field(init=False)
    _latest: dict[tuple[str, str], LiveMessage] = field(default_factory=dict)
    #: Per site, per kind: Kafka timestamp of the newest message (feeds' freshness).
    freshness: dict[str, dict[str, float]] = field(default_factory=dict)
    _clients: set[LiveClient] = field(default_factory=set)
    #: Wall time the Kafka connection was lost (None while live): the feed is stale.
    stale_since: float | None = None
    _status: LiveMessage | None = None

    def __post_init__(self) -> None:
        self._ring = deque(maxlen=self.ring_size)

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def start_at(self, positions: Positions) -> None:
        """The consumer is assigned and will read from ``positions`` on (called on each
        (re)start; partitions seen before keep their place, so nothing is counted twice)."""
        for partition, offset in positions.items():
            self.positions.setdefault(partition, offset)
            self.ring_floor.setdefault(partition, self.positions[partition])
        self.ready = True

    def publish(self, message: LiveMessage) -> bool:
        """Record and fan out one message; return False if it was a replay we already had."""
        if message.offset < self.positions.get(message.partition, 0):
            return False
        self.positions[message.partition] = message.offset + 1
        if len(self._ring) == self._ring.maxlen:
            evicted = self._ring[0]
            self.ring_floor[evicted.partition] = evicted.offset + 1
        self._ring.append(message)
        if message.keep_latest:
            self._latest[(message.kind, message.site)] = message
        if message.at:
            seen = self.freshness.setdefault(message.site, {})
            seen[message.kind] = max(seen.get(message.kind, 0.0), message.at)
        for client in list(self._clients):
            if client.site is not None and client.site != message.site:
                continue
            try:
                client.queue.put_nowait(message)
            except asyncio.QueueFull:
                self._drop(client)
                continue
            self.metrics.live_fanned_out.inc()
        return True

    def set_stale(self, stale: bool, detail: str) -> None:
        """Tell every client when the feed stops being live and when it is live again.

        Without this, a Kafka outage looked like a quiet city: connected clients got no
        sign and new ones a snapshot of unknown age with 200 while /healthz said 503. The
        ``status`` event says ``stale`` (since when, why) and later ``live`` with the
        length of the gap; data produced meanwhile follows once Kafka is back.
        """
        if stale == (self.stale_since is not None):
            return
        now = time.time()
        doc: dict[str, object] = {"state": "stale" if stale else "live", "detail": detail}
        if stale:
            self.stale_since = now
            doc["since"] = datetime.fromtimestamp(now, UTC).isoformat()
        else:
            doc["gap_s"] = round(now - (self.stale_since or now), 1)
            self.stale_since = None
        log.warning("live feed %s: %s", doc["state"], detail)
        self._status = LiveMessage(
            STATUS_PARTITION, 0, "", json.dumps(doc), kind="status", keep_latest=False
        )
        for client in list(self._clients):
            try:
                client.queue.put_nowait(self._status)
            except asyncio.QueueFull:
                self._drop(client)

    @property
    def status(self) -> LiveMessage | None:
        """The stale marker a new client must see first, or None while the feed is live."""
        return self._status if self.stale_since is not None else None

    def latest_of(self, kind: str) -> dict[str, LiveMessage]:
        """The newest message of ``kind`` per site (e.g. fused occupancy for exports)."""
        return {site: m for (k, site), m in self._latest.items() if k == kind}

    def skip(self, partition: int, offset: int) -> None:
        """Advance past a message that was not published (invalid payload)."""
        if offset >= self.positions.get(partition, 0):
            self.positions[partition] = offset + 1

    def subscribe(self, site: str | None) -> Subscription:
        client = LiveClient(asyncio.Queue(maxsize=self.client_queue), site)
        self._clients.add(client)
        self.metrics.sse_clients.set(len(self._clients))
        latest = [m for key, m in sorted(self._latest.items()) if site is None or key[1] == site]
        return Subscription(
            client, dict(self.positions), list(self._ring), dict(self.ring_floor), latest
        )

    def unsubscribe(self, client: LiveClient) -> None:
        self._clients.discard(client)
        self.metrics.sse_clients.set(len(self._clients))

    def close(self) -> None:
        """End every stream (shutdown)."""
        for client in list(self._clients):
            self._end(client)
        self._clients.clear()
        self.metrics.sse_clients.set(0)

    def _drop(self, client: LiveClient) -> None:
        log.warning(
            "dropping slow live client (site=%s): %d messages queued",
            client.site,
            client.queue.qsize(),
        )
        client.dropped = True
        self.metrics.sse_dropped.inc()
        self.unsubscribe(client)
        self._end(client)

    @staticmethod
    def _end(client: LiveClient) -> None:
        """Empty the queue so the end marker fits; the client resumes by event id anyway."""
        while not client.queue.empty():
            client.queue.get_nowait()
        client.queue.put_nowait(END)
