"""What every Wi-Fi source adapter shares: the sink it emits into and its counters.

Adding a vendor (UniFi, Aruba, Ruckus...) is one module: a class with ``name``, an async
``start()`` / ``stop()`` and the shared :class:`SourceStats`, that turns what the gear sends
into :class:`~edge.wifi.sessions.SessionFacts` and hands them to :class:`EventEmitter`.
Register its factory in :data:`edge.wifi.agent.ADAPTERS`.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from prometheus_client import Counter

from schemas.envelope import EventBase

PACKETS = Counter("tp_edge_wifi_packets_total", "Messages received per source", ["source"])
DROPPED = Counter(
    "tp_edge_wifi_dropped_total", "Messages dropped, by source and reason", ["source", "reason"]
)
EVENTS = Counter("tp_edge_wifi_events_total", "Events emitted per source", ["source", "type"])


class EventSink(Protocol):
    """Where events go: :class:`edge.link.MqttLink` in production (durable on return)."""

    def submit(self, event: EventBase) -> object: ...


class SourceAdapter(Protocol):
    """A running source: started and stopped by the agent, its stats in heartbeats."""

    name: str
    stats: SourceStats

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class SourceStats:
    """Counts per source; drop reasons are a closed set per adapter (metric labels).

    Reasons are never raw values: a label built from input would leak data and explode
    cardinality.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.packets = 0
        self.events = 0
        self.drops: dict[str, int] = {}
        self._lock = threading.Lock()
        self._last = (time.monotonic(), 0)
        self._packets = PACKETS.labels(source=source)  # per packet: skip the label lookup
        self._events: dict[str, Any] = {}
        self._drops: dict[str, Any] = {}

    def packet(self) -> None:
        self.packets_received(1)

    def packets_received(self, n: int) -> None:
        """Count a burst at once (one metric update per burst, not per packet)."""
        if n:
            self.packets += n
            self._packets.inc(n)

    def drop(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.drops[reason] = self.drops.get(reason, 0) + n
        child = self._drops.get(reason)
        if child is None:
            child = self._drops[reason] = DROPPED.labels(source=self.source, reason=reason)
        child.inc(n)

    def emitted(self, event: EventBase) -> None:
        self.events += 1
        child = self._events.get(event.type)
        if child is None:
            child = self._events[event.type] = EVENTS.labels(source=self.source, type=event.type)
        child.inc()

    def rate(self) -> float:
        """Packets per second since the previous call (one caller: the heartbeat)."""
        now = time.monotonic()
        then, count = self._last
        self._last = (now, self.packets)
        return round((self.packets - count) / max(now - then, 1e-6), 3)
