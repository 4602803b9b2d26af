"""Durable, bounded FIFO of MQTT messages waiting for the broker's acknowledgement.

Why SQLite in WAL mode: an edge box loses power and its uplink; events must survive both.
Every event is written here *before* it is published and deleted only after the broker's
PUBACK, so a crash or an outage at any moment loses nothing that was accepted. WAL lets the
adapters append while the publisher reads without blocking each other.

Bounded by count and age (both from config): when full, the oldest rows go first and are
counted in :attr:`Outbox.dropped` (exported as a metric and a heartbeat field), never silently.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS recent_ids (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL
);
"""
#: How long an event id is remembered after it was queued. A RADIUS NAS retransmits an
#: unanswered report for tens of seconds, also across a restart of the agent; without a
#: durable memory the retransmission became a second event with the same id and a new
#: arrival-based event time (stored twice, last-seen moved forward).
RECENT_ID_TTL_S = 3600.0


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
        self._depth = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
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
                seqs = self._insert(pairs, keys, now)
                overflow = self._depth + len(seqs) - self.max_events
                dropped = self._drop_oldest(overflow) if overflow > 0 else 0
            except BaseException:
                self._db.execute("ROLLBACK")  # nothing half-written; the caller may retry
                raise
            self._db.execute("COMMIT")
            self._depth += len(seqs) - dropped
            self.dropped += dropped
            self.repeated += len(pairs) - len(seqs)
        return seqs

    def _insert(
        self, pairs: list[tuple[str, bytes]], keys: list[str] | None, now: float
    ) -> list[int]:
        if keys is not None:
            pairs = [pairs[i] for i in self._first_time(keys, now)]
        # One executemany for the burst (one execute per row was most of the commit's
        # cost). Seqs are consecutive: AUTOINCREMENT, one writer (the lock).
        self._db.executemany(
            "INSERT INTO outbox (topic, payload, created) VALUES (?, ?, ?)",
            [(topic, payload, now) for topic, payload in pairs],
        )
        if not pairs:
            return []
        last = int(self._db.execute("SELECT last_insert_rowid()").fetchone()[0])
        return list(range(last - len(pairs) + 1, last + 1))

    def _first_time(self, event_ids: list[str], now: float) -> list[int]:
        """Indexes of the ids not queued recently (first of repeats within the list too);
        records them in the running transaction."""
        known: set[str] = set()
        for i in range(0, len(event_ids), 500):  # below SQLite's bound-parameter limit
            chunk = event_ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            known.update(
                str(row[0])
                for row in self._db.execute(
                    f"SELECT id FROM recent_ids WHERE id IN ({marks})",  # noqa: S608
                    chunk,
                )
            )
        fresh = []
        for i, event_id in enumerate(event_ids):
            if event_id not in known:
                known.add(event_id)
                fresh.append(i)
        self._db.executemany(
            "INSERT INTO recent_ids (id, created) VALUES (?, ?)",
            [(event_ids[i], now) for i in fresh],
        )
        return fresh

    def peek(self, after: int = 0, limit: int = 100) -> list[Queued]:
        """The oldest ``limit`` messages with ``seq > after``, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload, created FROM outbox"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [Queued(int(s), str(t), bytes(p), float(c)) for s, t, p, c in rows]

    def ack(self, seqs: Iterable[int]) -> int:
        """Delete acknowledged messages; returns how many were still queued."""
        keys = [(s,) for s in seqs]
        if not keys:
            return 0
        with self._lock:
            self._db.execute("BEGIN")
            before = self._db.total_changes
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", keys)
            removed = self._db.total_changes - before
            self._db.execute("COMMIT")
            self._depth -= removed
        return removed

    def expire(self) -> int:
        """Drop messages older than ``max_age_s`` (counted in :attr:`dropped`)."""
        cutoff = self._clock() - self.max_age_s
        with self._lock:
            self._db.execute(
                "DELETE FROM recent_ids WHERE created < ?", (self._clock() - RECENT_ID_TTL_S,)
            )
            cur = self._db.execute("DELETE FROM outbox WHERE created < ?", (cutoff,))
            self._depth -= cur.rowcount
            self.dropped += cur.rowcount
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

    def _drop_oldest(self, n: int) -> int:
        cur = self._db.execute(
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)", (n,)
        )
        return int(cur.rowcount)
