"""Simulated event ids are canonical, time-ordered UUIDv7s."""

from __future__ import annotations

import random
import uuid

from edge.simulator.generator import _uuid7


def test_ids_are_canonical_uuid7_carrying_the_simulated_millisecond() -> None:
    rng = random.Random(3)
    times = sorted(rng.uniform(1.7e9, 1.8e9) for _ in range(2000))
    ids = [_uuid7(t, rng) for t in times]
    for t, text in zip(times, ids, strict=True):
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # lower-case hex, 8-4-4-4-12
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert parsed.int >> 80 == int(t * 1000)
    assert len(set(ids)) == len(ids)
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)  # ordered by time
