"""When the edge link's per-topic batches leave: full, lingered, quiet, or at the byte cap."""

from __future__ import annotations

from edge.link.batches import PendingBatches
from edge.link.outbox import Queued
from schemas.batch import MAX_BATCH_BYTES


def _rows(topic: str, n: int, first: int = 1, size: int = 10) -> list[Queued]:
    return [Queued(first + i, topic, b"x" * size, 0.0) for i in range(n)]


def test_a_quiet_topic_leaves_at_once_and_a_busy_one_waits_for_linger_or_a_full_batch() -> None:
    batches = PendingBatches(most=3, linger_s=0.05)
    batches.add(_rows("a", 1))
    assert [r.seq for r in batches.due("a", now=10.0)] == [1]  # quiet: no wait
    batches.sent("a", 1, now=10.0)
    batches.add(_rows("a", 2, first=2))
    assert batches.due("a", now=10.01) == []  # busy: waits for company...
    assert [r.seq for r in batches.due("a", now=10.06)] == [2, 3]  # ...at most linger_s
    batches.add(_rows("a", 2, first=4))
    assert [r.seq for r in batches.due("a", now=10.02)] == [2, 3, 4]  # full: at once
    assert batches.rows == 4


def test_topics_never_mix_and_clear_forgets_everything() -> None:
    batches = PendingBatches(most=10, linger_s=0.05)
    batches.add([*_rows("a", 2), *_rows("b", 1, first=3)])
    assert {t: [r.seq for r in batches.due(t, now=1.0)] for t in batches.topics()} == {
        "a": [1, 2],
        "b": [3],
    }
    batches.clear()
    assert batches.rows == 0 and batches.due("a", now=2.0) == []


def test_a_batch_stays_within_the_gateways_byte_limit() -> None:
    size = MAX_BATCH_BYTES // 3
    batches = PendingBatches(most=10, linger_s=0.0)
    batches.add(_rows("a", 5, size=size))
    first = batches.due("a", now=1.0)
    assert len(first) == 2 and sum(len(r.payload) + 1 for r in first) + 2 <= MAX_BATCH_BYTES
    big = PendingBatches(most=10, linger_s=0.0)
    big.add(_rows("a", 1, size=MAX_BATCH_BYTES + 1))
    assert len(big.due("a", now=1.0)) == 1  # one oversized event still leaves (and is refused)
