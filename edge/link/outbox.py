"""Durable, bounded FIFO of MQTT messages waiting for the broker's acknowledgement.

Why SQLite in WAL mode: an edge box loses power and its uplink; events must survive both.
Every event is written here *before* it is published and deleted only after the broker's
PUBACK, so a crash or an outage at any moment loses nothing that was accepted. WAL lets the
adapters append while the publisher reads without blocking each other.

Bounded by count and age (both from config): when full, the oldest rows go first and are
counted in :attr:`Outbox.dropped` (exported as a metric and a heartbeat field), never silently.

Rows just written are also kept in memory (the tail, :data:`TAIL_MAX_ROWS`) until their
PUBACK: the link reads what was written a moment ago from there instead of querying the
file back. The file stays the truth: a backlog beyond the tail, or a replay from the head
after a reconnect, is read from it as before.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

from edge.link.recent_ids import RecentIds

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL
);
"""
#: Most rows the in-memory tail holds: a full in-flight window of full batches (the link's
#: defaults read at most 20 x 100 rows ahead; the benchmark fleet 100 x 100) with room to
#: spare, about 10 MB of ~500-byte events. Rows written while it is full are read from the
#: file.
TAIL_MAX_ROWS = 20_000


class Queued(NamedTuple):
    seq: int
    topic: str
    payload: bytes
    created: float


class Outbox:
    """Thread-safe (one connection behind a lock): adapters ``put``, the publisher reads/acks.

    ``synchronous`` is SQLite's durability knob: ``NORMAL`` (default) survives a process
    crash and costs no fsync per event; ``FULL`` also survives power loss at ~100x the cost.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_events: int = 500_000,
        max_age_s: float = 7 * 24 * 3600,
        synchronous: str = "NORMAL",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if synchronous not in ("OFF", "NORMAL", "FULL"):
            raise ValueError(f"synchronous must be OFF, NORMAL or FULL, not {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_events = max_events
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        self._recent = RecentIds(self._db)
        self._depth = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        #: Rows written by this process and not yet acknowledged, by seq (insertion order).
        self._tail: dict[int, Queued] = {}
        #: Highest seq ever assigned (AUTOINCREMENT never reuses one): nothing lies beyond.
        self._last_seq = self._max_seq()
        #: Events dropped because the outbox was full or too old (since this process started).
        self.dropped = 0
        #: Submissions skipped because their event id was queued recently (retransmissions).
        self.repeated = 0

    def put(self, topic: str, payload: bytes) -> int:
        """Append one message durably and return its sequence number."""
        return self.put_many([(topic, payload)])[-1]

    def put_many(
        self, items: Iterable[tuple[str, bytes]], ids: Iterable[str] | None = None
    ) -> list[int]:
        """Append several messages in one transaction (one commit for a burst).

        With ``ids`` (one event id per item), an item whose id was queued within
        RECENT_ID_TTL_S is skipped and counted in :attr:`repeated`; the ids are recorded in
        the same transaction as the rows, so a crash can never separate the two.
        """
        now = self._clock()
        pairs = list(items)
        keys = list(ids) if ids is not None else None
        if keys is not None and len(keys) != len(pairs):
            raise ValueError("put_many: one id per item")
        with self._lock:
            self._db.execute("BEGIN")
            try:
                recorded = self._recent.record(keys, now) if keys is not None else None
                fresh = pairs if recorded is None else [pairs[i] for i in recorded.fresh]
                rows = self._insert(fresh, now)
                overflow = self._depth + len(rows) - self.max_events
                dropped = self._drop_oldest(overflow) if overflow > 0 else 0
            except BaseException:
                self._db.execute("ROLLBACK")  # nothing half-written; the caller may retry
                raise
            self._db.execute("COMMIT")
            if recorded is not None:
                self._recent.committed(recorded)
            self.repeated += len(pairs) - len(fresh)
            self._depth += len(rows) - dropped
            self.dropped += dropped
            if rows:
                self._last_seq = rows[-1].seq
            if dropped:
                self._tail.clear()  # some of it is gone from the file: read the file again
            elif len(self._tail) + len(rows) <= TAIL_MAX_ROWS:
                self._tail.update((row.seq, row) for row in rows)
        return [row.seq for row in rows]

    def _insert(self, pairs: list[tuple[str, bytes]], now: float) -> list[Queued]:
        # One executemany for the burst (one execute per row was most of the commit's
        # cost). Seqs are consecutive: AUTOINCREMENT, one writer (the lock).
        self._db.executemany(
            "INSERT INTO outbox (topic, payload, created) VALUES (?, ?, ?)",
            [(topic, payload, now) for topic, payload in pairs],
        )
        if not pairs:
            return []
        first = int(self._db.execute("SELECT last_insert_rowid()").fetchone()[0]) - len(pairs) + 1
        return [Queued(first + i, t, p, now) for i, (t, p) in enumerate(pairs)]

    def peek(self, after: int = 0, limit: int = 100) -> list[Queued]:
        """The oldest ``limit`` messages with ``seq > after``, in order.

        The rows right after ``after`` come from the in-memory tail while it holds them
        (consecutive seqs: nothing older than them is left), the rest from the file.
        """
        with self._lock:
            if after >= self._last_seq:
                return []  # nothing was written after it: no query
            head: list[Queued] = []
            seq = after + 1
            while len(head) < limit and (row := self._tail.get(seq)) is not None:
                head.append(row)
                seq += 1
            if len(head) == limit or seq > self._last_seq:
                return head
            rows = self._db.execute(
                "SELECT seq, topic, payload, created FROM outbox"
                " WHERE seq >= ? ORDER BY seq LIMIT ?",
                (seq, limit - len(head)),
            ).fetchall()
        return head + [Queued(int(s), str(t), bytes(p), float(c)) for s, t, p, c in rows]

    def ack(self, seqs: Iterable[int]) -> int:
        """Delete acknowledged messages; returns how many were still queued.

        Runs of consecutive seqs are deleted by range (one statement per run, not per row):
        acknowledgements collected over a few PUBACKs are mostly one run.
        """
        runs = _runs(seqs)
        if not runs:
            return 0
        with self._lock:
            self._db.execute("BEGIN")
            before = self._db.total_changes
            self._db.executemany("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", runs)
            removed = self._db.total_changes - before
            self._db.execute("COMMIT")
            self._depth -= removed
            for lo, hi in runs:
                for seq in range(lo, hi + 1):
                    self._tail.pop(seq, None)
        return removed

    def expire(self) -> int:
        """Drop messages older than ``max_age_s`` (counted in :attr:`dropped`); forget the
        event ids remembered long enough."""
        now = self._clock()
        cutoff = now - self.max_age_s
        with self._lock:
            self._recent.expire(now)
            cur = self._db.execute("DELETE FROM outbox WHERE created < ?", (cutoff,))
            self._depth -= cur.rowcount
            self.dropped += cur.rowcount
            if cur.rowcount:
                self._tail.clear()
        return cur.rowcount

    def depth(self) -> int:
        return self._depth

    def oldest_age(self) -> float | None:
        """Seconds since the oldest queued message was written; None when empty."""
        with self._lock:
            row = self._db.execute("SELECT MIN(created) FROM outbox").fetchone()
        return None if row[0] is None else max(0.0, self._clock() - float(row[0]))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _max_seq(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return int(row[0]) if row else 0

    def _drop_oldest(self, n: int) -> int:
        cur = self._db.execute(
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)", (n,)
        )
        return int(cur.rowcount)


def _runs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, distinct ``seqs`` as inclusive runs of consecutive numbers."""
    runs: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs
