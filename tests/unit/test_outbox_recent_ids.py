"""The outbox's memory of recently queued event ids: keyed by a 64-bit hash, yet exact."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from edge.link import recent_ids as recent_module
from edge.link.outbox import Outbox


def test_repeated_ids_are_skipped_within_and_across_bursts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    assert len(box.put_many([("t", b"a"), ("t", b"b"), ("t", b"a2")], ids=["A", "B", "A"])) == 2
    assert box.put_many([("t", b"a3"), ("t", b"c")], ids=["A", "C"]) != []
    assert [r.payload for r in box.peek()] == [b"a", b"b", b"c"]
    assert box.repeated == 2
    box.close()
    again = Outbox(tmp_path / "o.sqlite")  # the memory is durable
    assert again.put_many([("t", b"b2")], ids=["B"]) == []
    again.close()


def test_a_hash_collision_never_hides_a_new_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recent_module, "_id_hash", lambda _id: 42)
    box = Outbox(tmp_path / "o.sqlite")
    box.put_many([("t", b"x")], ids=["X"])
    box.put_many([("t", b"y"), ("t", b"x2")], ids=["Y", "X"])
    # Y collides with X: it is queued (ids differ); X's memory was replaced, so X repeats.
    assert [r.payload for r in box.peek()] == [b"x", b"y", b"x2"]
    box.close()


@pytest.mark.parametrize(
    "schema",
    [
        "CREATE TABLE recent_ids (id TEXT PRIMARY KEY, created REAL NOT NULL)",
        "CREATE TABLE recent_event_ids (h INTEGER PRIMARY KEY, id TEXT, created REAL)",
        "CREATE TABLE recent_event_ids_log (seq INTEGER PRIMARY KEY, h INTEGER, id TEXT,"
        " created REAL)",
    ],
)
def test_ids_remembered_by_earlier_versions_are_carried_over(tmp_path: Path, schema: str) -> None:
    path = tmp_path / "o.sqlite"
    table = schema.split()[2]
    db = sqlite3.connect(path)
    db.execute(schema)
    db.execute(f"INSERT INTO {table} (id, created) VALUES ('OLD', ?)", (time.time(),))
    db.commit()
    db.close()
    box = Outbox(path)
    assert box.put_many([("t", b"old"), ("t", b"new")], ids=["OLD", "NEW"]) != []
    assert [r.payload for r in box.peek()] == [b"new"]
    box.close()
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert table not in tables


def test_ids_are_forgotten_after_their_hour_and_not_before(tmp_path: Path) -> None:
    now = [1_000_000.0]
    box = Outbox(tmp_path / "o.sqlite", clock=lambda: now[0])
    box.put_many([("t", b"a")], ids=["A"])
    now[0] += 20.0
    box.put_many([("t", b"b")], ids=["B"])
    now[0] += recent_module.RECENT_ID_TTL_S - 5.0  # A is 3615 s old, B 3595 s
    box.expire()
    box.close()
    again = Outbox(tmp_path / "o.sqlite", clock=lambda: now[0])  # the file agrees
    assert again.put_many([("t", b"a2"), ("t", b"b2")], ids=["A", "B"]) != []
    assert [r.payload for r in again.peek()] == [b"a", b"b", b"a2"]
    again.close()


def test_the_memory_is_bounded_by_forgetting_the_oldest_ids(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "r.sqlite", isolation_level=None)
    recent = recent_module.RecentIds(db, max_ids=3)
    for n in range(5):
        recent.committed(recent.record([f"id{n}"], now=100.0 + n))
    recent.expire(now=110.0)
    assert len(recent) == 3
    assert recent.record(["id0", "id1", "id2", "id4"], now=111.0).fresh == [0, 1]
    assert db.execute("SELECT COUNT(*) FROM recent_event_ids_bursts").fetchone()[0] == 4
