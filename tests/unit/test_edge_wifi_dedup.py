"""The RADIUS duplicate filter remembers a packet for ttl/2..ttl seconds, bounded in size."""

from __future__ import annotations

from edge.wifi.radius import Deduplicator


def test_a_key_is_remembered_at_least_half_the_ttl_and_at_most_the_ttl() -> None:
    d = Deduplicator(ttl=10.0, max_entries=100)
    d.remember(b"a", 0.0)
    assert d.seen(b"a", 4.9) and not d.seen(b"b", 4.9)
    assert d.seen(b"a", 6.0)  # rotated into the previous generation, still known
    assert not d.seen(b"a", 11.1)  # two rotations later: forgotten


def test_size_is_bounded_by_rotating_early() -> None:
    d = Deduplicator(ttl=100.0, max_entries=10)
    for i in range(30):
        d.remember(bytes([i]), 1.0)
    assert d.seen(bytes([29]), 1.0) and not d.seen(bytes([0]), 1.0)
    assert len(d._current) + len(d._previous) <= 10
