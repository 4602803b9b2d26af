"""Outbox rows read but not yet published, queued per topic until their batch is due.

One topic is one device's stream, so a batch never mixes devices (the gateway checks every
element against the topic). A topic's rows leave as one message when they fill a batch
(``most`` events, within the gateway's byte limit), or when the topic has sent nothing for
``linger_s``: a quiet device adds no latency, a busy one sends few large messages.
"""

from __future__ import annotations

from collections.abc import KeysView
from dataclasses import dataclass, field

from edge.link.outbox import Queued
from schemas.batch import MAX_BATCH_BYTES


@dataclass
class _Topic:
    rows: list[Queued] = field(default_factory=list)
    last_sent: float = float("-inf")  # monotonic time this topic's last message left


class PendingBatches:
    """Not thread-safe: owned by the link thread."""

    def __init__(self, most: int, linger_s: float) -> None:
        self.most = most
        self.linger_s = linger_s
        self.rows = 0  # rows held, all topics
        self._topics: dict[str, _Topic] = {}

    def add(self, rows: list[Queued]) -> None:
        for row in rows:
            queue = self._topics.get(row.topic)
            if queue is None:
                queue = self._topics[row.topic] = _Topic()
            queue.rows.append(row)
        self.rows += len(rows)

    def topics(self) -> KeysView[str]:
        """Every topic seen so far (a live view: only :meth:`add` adds to it)."""
        return self._topics.keys()

    def due(self, topic: str, now: float) -> list[Queued]:
        """The topic's next batch if it must leave now, else an empty list."""
        queue = self._topics[topic]
        if not queue.rows:
            return []
        if len(queue.rows) < self.most and now - queue.last_sent < self.linger_s:
            return []  # the device is busy: wait for more of its events
        return _head(queue.rows, self.most)

    def sent(self, topic: str, n: int, now: float) -> None:
        """The first ``n`` rows of ``topic`` were handed to the MQTT client."""
        queue = self._topics[topic]
        del queue.rows[:n]
        queue.last_sent = now
        self.rows -= n

    def clear(self) -> None:
        """Forget every row held (they stay in the outbox and are read again later)."""
        for queue in self._topics.values():
            queue.rows.clear()
        self.rows = 0


def _head(rows: list[Queued], most: int) -> list[Queued]:
    """At most ``most`` rows from the head within the gateway's batch size limit."""
    size, n = 2, 0
    for row in rows[:most]:
        size += len(row.payload) + 1
        if n and size > MAX_BATCH_BYTES:
            break
        n += 1
    return rows[:n]
