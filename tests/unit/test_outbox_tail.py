"""The outbox's in-memory tail and range deletes agree with the file under every operation.

The tail serves the link's reads of rows written a moment ago; if it ever disagreed with
the file (an acknowledged row read again, a dropped row resurrected, a row skipped), the
link would publish what it must not or lose what it must send. Checked against a second,
independent connection that reads the file itself.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from edge.link import outbox as outbox_module
from edge.link.acks import PendingAcks
from edge.link.outbox import Outbox, Queued


class Ticks:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _file_rows(path: Path, after: int, limit: int) -> list[Queued]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT seq, topic, payload, created FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
    return [Queued(int(s), str(t), bytes(p), float(c)) for s, t, p, c in rows]


@pytest.mark.parametrize("seed", range(6))
def test_peek_matches_the_file_through_random_operations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    # A tail larger than the bound (it holds rows that overflow drops) and one often full.
    monkeypatch.setattr(outbox_module, "TAIL_MAX_ROWS", rng_tail := [40, 12][seed % 2])
    rng = random.Random(seed)
    clock = Ticks()
    path = tmp_path / "o.sqlite"
    bound = 30 if rng_tail > 30 else 120

    def opened() -> Outbox:
        return Outbox(path, max_events=bound, max_age_s=50, clock=clock)

    box = opened()
    written: list[int] = []
    n = 0
    for _ in range(400):
        op = rng.random()
        if op < 0.45:
            k = rng.randint(1, 12)
            ids = [f"e{rng.randint(0, 3 * n + 10)}" for _ in range(k)]  # some repeats
            items = [(f"t{rng.randint(0, 3)}", f"p{n + i}".encode()) for i in range(k)]
            n += k
            written += box.put_many(items, ids=ids)
        elif op < 0.75 and written:
            box.ack(rng.sample(written, min(len(written), rng.randint(1, 15))))
        elif op < 0.8:
            clock.t += rng.choice([1, 5, 30])
            box.expire()
        elif op < 0.85:
            box.close()
            box = opened()
        after = rng.choice([0, *written[-30:]]) if written else 0
        limit = rng.randint(1, 60)
        assert box.peek(after, limit) == _file_rows(path, after, limit)
    assert box.depth() == len(_file_rows(path, 0, 10**6))
    box.close()


def test_rows_dropped_or_expired_are_not_read_from_memory(tmp_path: Path) -> None:
    clock = Ticks()
    box = Outbox(tmp_path / "o.sqlite", max_events=3, max_age_s=60, clock=clock)
    seqs = [box.put("t", f"m{i}".encode()) for i in range(5)]  # m0, m1 dropped by the bound
    assert [r.payload for r in box.peek()] == [b"m2", b"m3", b"m4"]
    assert [r.seq for r in box.peek(after=seqs[0])] == seqs[2:]
    box.close()
    box = Outbox(tmp_path / "o2.sqlite", max_events=10, max_age_s=60, clock=clock)
    old = box.put_many([("t", b"old0"), ("t", b"old1")])
    clock.t += 30
    late = box.put("t", b"late")
    clock.t += 31
    assert box.expire() == 2  # old0, old1; "late" is 31 s old
    assert [r.payload for r in box.peek()] == [b"late"]
    assert [r.seq for r in box.peek(after=old[0])] == [late]
    box.close()


def test_rows_just_written_are_read_back_without_a_query(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    seqs = box.put_many([("t", b"a"), ("t", b"b"), ("t", b"c")])
    statements: list[str] = []
    box._db.set_trace_callback(statements.append)
    assert [r.payload for r in box.peek(after=0)] == [b"a", b"b", b"c"]
    assert box.peek(after=seqs[-1]) == []  # nothing newer: no query either
    assert statements == []
    box.close()


def test_ack_deletes_exactly_the_given_rows(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    seqs = box.put_many([("t", f"m{i}".encode()) for i in range(10)])
    assert box.ack([seqs[i] for i in (7, 1, 2, 3, 9, 2)]) == 5  # runs 1-3, 7, 9; a repeat
    assert [r.payload for r in box.peek(limit=20)] == [b"m0", b"m4", b"m5", b"m6", b"m8"]
    assert box.depth() == 5
    box.close()


def test_pending_acks_delete_together_when_due(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    clock = Ticks()
    acks = PendingAcks(box, every_s=0.05, most=4, clock=clock)
    seqs = box.put_many([("t", f"m{i}".encode()) for i in range(6)])
    acks.add(seqs[:2])
    assert acks.flush() == 0 and box.depth() == 6  # held: neither old nor many enough
    clock.t += 0.06
    acks.add(seqs[2:3])
    assert acks.flush() == 3 and box.depth() == 3  # the oldest waited 50 ms
    acks.add(seqs[3:])
    assert acks.flush() == 0
    assert acks.flush(force=True) == 3 and box.depth() == 0
    box.close()
