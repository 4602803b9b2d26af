"""The outbox's durable memory of recently queued event ids (retransmission guard).

Why a log plus an index in memory: ids are random (uuid5 of a RADIUS report), so keeping
them in a keyed SQLite table dirtied one B-tree page per id, and the WAL took a 4 KB page
image per id at every commit: 13 of the ~19 µs an id cost. Now each burst's ids are
appended to a log table as one row (its right-most page only; a row per id was still a
fifth of the edge link's time) and found through an in-memory map of 64-bit hash -> log
row, about 110 bytes per id remembered (a site's hour of events: a few MB); the log is
read back into that map at start-up. Expiry deletes the log's oldest rows by range.

Everything is written in the caller's transaction (the outbox's), so a crash never
separates an event from its id; the map changes only once that transaction has committed
(:meth:`RecentIds.committed`), so a rolled-back burst is not remembered.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

SCHEMA = """
CREATE TABLE IF NOT EXISTS recent_event_ids_bursts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    ids TEXT NOT NULL
);
"""
#: Tables of earlier versions, carried over once: (name, SELECT of its ids and times).
_OLD_TABLES = (
    ("recent_ids", "SELECT id, created FROM recent_ids ORDER BY created"),
    ("recent_event_ids", "SELECT id, created FROM recent_event_ids ORDER BY created"),
    ("recent_event_ids_log", "SELECT id, created FROM recent_event_ids_log ORDER BY seq"),
)
#: How long an event id is remembered at least after it was queued. A RADIUS NAS
#: retransmits an unanswered report for tens of seconds, also across a restart of the
#: agent; without a durable memory the retransmission became a second event with the same
#: id and a new arrival-based event time (stored twice, last-seen moved forward).
RECENT_ID_TTL_S = 3600.0
#: Most ids remembered (~110 MB of map): beyond it the oldest are forgotten before their
#: hour, so a box flooded far beyond a site's rate (278 events/s for an hour) keeps its
#: memory bounded.
MAX_IDS = 1_000_000
_CHUNK = 500  # bursts read at a time, and below SQLite's bound-parameter limit


@dataclass(frozen=True)
class Recorded:
    """What :meth:`RecentIds.record` wrote in the running transaction."""

    fresh: list[int]  # indexes of the ids seen for the first time
    hashes: list[int]  # their hashes, all in log row ``seq``
    seq: int = 0


class RecentIds:
    """Ids queued within RECENT_ID_TTL_S, on the outbox's connection (its lock held)."""

    def __init__(self, db: sqlite3.Connection, max_ids: int = MAX_IDS) -> None:
        self._db = db
        self.max_ids = max_ids
        db.executescript(SCHEMA)
        self._migrate()
        #: Hash -> seq of the log row (burst) holding the latest id with that hash.
        self._seq_of: dict[int, int] = {}
        for seq, ids in db.execute("SELECT seq, ids FROM recent_event_ids_bursts ORDER BY seq"):
            self._seq_of.update((_id_hash(i), int(seq)) for i in json.loads(ids))

    def __len__(self) -> int:
        return len(self._seq_of)

    def record(self, event_ids: list[str], now: float) -> Recorded:
        """Find the ids not queued recently (first of repeats within the list too) and log
        them as one row, in the running transaction.

        Keyed by a 64-bit hash: a hit is confirmed against the full ids of its log row, so
        a hash collision replaces the older memory instead of hiding a new event.
        """
        hashes = [_id_hash(i) for i in event_ids]
        logged = self._logged_ids({self._seq_of[h] for h in hashes if h in self._seq_of})
        burst: dict[int, str] = {}
        fresh: list[int] = []
        for i, (h, event_id) in enumerate(zip(hashes, event_ids, strict=True)):
            if h in burst:
                repeat = burst[h] == event_id
            else:
                repeat = event_id in logged.get(self._seq_of.get(h, 0), ())
            if not repeat:
                burst[h] = event_id
                fresh.append(i)
        if not fresh:
            return Recorded([], [])
        cur = self._db.execute(
            "INSERT INTO recent_event_ids_bursts (created, ids) VALUES (?, ?)",
            (now, json.dumps([event_ids[i] for i in fresh])),
        )
        return Recorded(fresh, [hashes[i] for i in fresh], int(cur.lastrowid or 0))

    def committed(self, recorded: Recorded) -> None:
        """The transaction of ``recorded`` committed: the map follows the file."""
        self._seq_of.update(dict.fromkeys(recorded.hashes, recorded.seq))

    def expire(self, now: float) -> int:
        """Forget ids logged more than RECENT_ID_TTL_S ago, and the oldest beyond
        ``max_ids``; returns how many ids went."""
        gone, upto = 0, 0
        for seq, created, ids in self._oldest_first():
            if created >= now - RECENT_ID_TTL_S and len(self._seq_of) <= self.max_ids:
                break
            upto = seq
            for event_id in json.loads(ids):
                h = _id_hash(event_id)
                if self._seq_of.get(h) == seq:  # not since logged again in a later row
                    del self._seq_of[h]
                    gone += 1
        if upto:
            self._db.execute("DELETE FROM recent_event_ids_bursts WHERE seq <= ?", (upto,))
        return gone

    def _oldest_first(self) -> Iterator[tuple[int, float, str]]:
        """The log's rows in order, read ``_CHUNK`` at a time."""
        after = 0
        while rows := self._db.execute(
            "SELECT seq, created, ids FROM recent_event_ids_bursts WHERE seq > ?"
            " ORDER BY seq LIMIT ?",
            (after, _CHUNK),
        ).fetchall():
            for seq, created, ids in rows:
                yield int(seq), float(created), str(ids)
            after = int(rows[-1][0])

    def _logged_ids(self, seqs: set[int]) -> dict[int, frozenset[str]]:
        """The ids of the log rows ``seqs`` (hash hits: retransmissions, or a collision)."""
        found: dict[int, frozenset[str]] = {}
        wanted = sorted(seqs)
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                (int(seq), frozenset(json.loads(ids)))
                for seq, ids in self._db.execute(
                    f"SELECT seq, ids FROM recent_event_ids_bursts WHERE seq IN ({marks})", chunk
                )
            )
        return found

    def _migrate(self) -> None:
        """Carry the ids an older version remembered over to the log, once."""
        for table, select in _OLD_TABLES:
            old = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone()
            if old is None:
                continue
            rows = self._db.execute(select).fetchall()
            self._db.execute("BEGIN")
            for i in range(0, len(rows), _CHUNK):
                chunk = rows[i : i + _CHUNK]
                self._db.execute(
                    "INSERT INTO recent_event_ids_bursts (created, ids) VALUES (?, ?)",
                    (float(chunk[-1][1]), json.dumps([str(r[0]) for r in chunk])),
                )
            self._db.execute(f"DROP TABLE {table}")
            self._db.execute("COMMIT")


#: The map's key for an event id: Python's own string hash (64-bit, SipHash). It differs
#: between processes, which costs nothing here (the map lives in memory and is rebuilt
#: from the log at start-up), and a str caches it; a BLAKE2b digest per id was about a
#: fifth of what recording a burst cost.
_id_hash = hash
