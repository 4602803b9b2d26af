"""SSE event ids that are Kafka positions, so a reconnecting client can resume anywhere.

An id is the vector of *next* offsets per partition the client has been sent, e.g.
``0-124.1-46.2-0``: everything below offset 124 of partition 0 (and so on) was delivered.
Because it names Kafka positions rather than a per-process counter, the id stays
meaningful across API restarts and across API replicas behind a load balancer.
"""

from __future__ import annotations

import re
from typing import Protocol

from prometheus_client import Counter, Gauge

#: ``partition-offset`` pairs joined by dots; bounded so a hostile header stays cheap.
_ID_PATTERN = re.compile(r"^\d{1,5}-\d{1,19}(\.\d{1,5}-\d{1,19}){0,1023}$")

Positions = dict[int, int]

#: A feed over several Kafka topics numbers topic ``i``'s partition ``p`` as
#: ``i * PARTITION_STRIDE + p``, so one position vector (and one SSE id) covers them all
#: and a single-topic feed's ids are plain partition numbers, as before.
PARTITION_STRIDE = 1000


class LiveMetrics(Protocol):
    """The counters a hub and its consumer update (``api.metrics.ApiMetrics`` has them;
    a second feed in the same app brings its own set under other names)."""

    sse_clients: Gauge
    sse_dropped: Counter
    live_consumed: Counter
    live_fanned_out: Counter
    live_invalid: Counter
    live_resumes: Counter
    live_consumer_errors: Counter


class BadEventId(ValueError):
    """A ``Last-Event-ID`` that is not one of ours (another server, a typo, tampering)."""


def encode_positions(positions: Positions) -> str:
    """Render a position vector as an SSE id (partitions in ascending order)."""
    return ".".join(f"{p}-{o}" for p, o in sorted(positions.items()))


def decode_positions(event_id: str) -> Positions:
    """Parse an id made by :func:`encode_positions`; raise :class:`BadEventId` otherwise."""
    text = event_id.strip()
    if not _ID_PATTERN.match(text):
        raise BadEventId(f"not a TourPulse live event id: {event_id[:80]!r}")
    positions: Positions = {}
    for pair in text.split("."):
        partition, offset = pair.split("-")
        positions[int(partition)] = int(offset)
    return positions
