"""The outbox's memory of recently queued event ids: keyed by a 64-bit hash, yet exact."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge.link import outbox as outbox_module
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
    monkeypatch.setattr(outbox_module, "_id_hash", lambda _id: 42)
    box = Outbox(tmp_path / "o.sqlite")
    box.put_many([("t", b"x")], ids=["X"])
    box.put_many([("t", b"y"), ("t", b"x2")], ids=["Y", "X"])
    # Y collides with X: it is queued (ids differ); X's memory was replaced, so X repeats.
    assert [r.payload for r in box.peek()] == [b"x", b"y", b"x2"]
    box.close()


def test_ids_remembered_by_the_previous_schema_are_carried_over(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE recent_ids (id TEXT PRIMARY KEY, created REAL NOT NULL)")
    db.execute("INSERT INTO recent_ids VALUES ('OLD', ?)", (outbox_module.time.time(),))
    db.commit()
    db.close()
    box = Outbox(path)
    assert box.put_many([("t", b"old"), ("t", b"new")], ids=["OLD", "NEW"]) != []
    assert [r.payload for r in box.peek()] == [b"new"]
    box.close()
