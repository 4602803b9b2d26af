"""SSE event ids that are Kafka positions, so a reconnecting client can resume anywhere.

An id is the vector of *next* offsets per partition the client has been sent, e.g.
``0-124.1-46.2-0``: everything below offset 124 of partition 0 (and so on) was delivered.
Because it names Kafka positions rather than a per-process counter, the id stays
meaningful across API restarts and across API replicas behind a load balancer.
"""

from __future__ import annotations

import re

#: ``partition-offset`` pairs joined by dots; bounded so a hostile header stays cheap.
_ID_PATTERN = re.compile(r"^\d{1,5}-\d{1,19}(\.\d{1,5}-\d{1,19}){0,1023}$")

Positions = dict[int, int]


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
