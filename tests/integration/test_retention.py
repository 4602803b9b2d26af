"""Retention against real PostgreSQL: old raw partitions dropped, recent kept, old rows of
other tables deleted in batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from stream.storage.retention import RetentionPolicy, enforce

pytestmark = pytest.mark.integration
#: Run on TimescaleDB and on plain PostgreSQL (conftest.pytest_generate_tests).
BOTH_BACKENDS = True


def _partitions(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'wifi_session_events'::regclass"
    ).fetchall()
    return {r[0] for r in rows}


def _raw_event(conn: psycopg.Connection, at: datetime, n: int) -> None:
    conn.execute(
        "INSERT INTO wifi_session_events (event_id, event_time, site, device, type, client_id,"
        " session_id, ap) SELECT 'e' || g || %s, %s, 's', 'd', 'wifi.session.start', 'c', 'x',"
        " 'ap' FROM generate_series(1, %s) g",
        (at.isoformat(), at, n),
    )


def test_old_partitions_and_rows_go_recent_stay(database_url: str, db_backend: str) -> None:
    now = datetime.now(UTC)
    old_day = (now - timedelta(days=40)).date()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT tp_ensure_event_partitions(%s, 3)", (old_day,))
        before = _partitions(conn)
        old_parts = {f"wifi_session_events_p{old_day + timedelta(d):%Y%m%d}" for d in range(3)}
        if db_backend == "plain":
            assert old_parts <= before
        _raw_event(conn, now - timedelta(days=40), 4)
        _raw_event(conn, now - timedelta(days=1), 2)
        for days, n in ((100, 7), (60, 5), (1, 3)):
            t = now - timedelta(days=days)
            conn.execute(
                "INSERT INTO occupancy_minute (site, minute, connected, new_sessions, "
                "ended_sessions) SELECT 's', %s - g * interval '1 minute', 1, 0, 0 "
                "FROM generate_series(1, %s) g",
                (t, n),
            )
            conn.execute(
                "INSERT INTO flow_hourly (site, hour, day, unique_visitors, "
                "unique_visitors_stable, new_visitors, returning_visitors, dwell_sessions) "
                "VALUES ('s', date_trunc('hour', %s::timestamptz), %s, 1, 1, 1, 0, 0)",
                (t, t.date()),
            )
    lines: list[str] = []
    removed = enforce(database_url, RetentionPolicy(), now=now, batch=2, say=lines.append)
    assert removed["occupancy_minute"] == 7  # 100 days old; 60 and 1 day old stay
    assert removed["flow_hourly"] == 0  # hourly rows are kept two years
    if db_backend == "plain":
        assert removed["wifi_session_events (partitions)"] >= 3
    else:
        assert removed["wifi_session_events"] == 4
    with psycopg.connect(database_url) as conn:
        if db_backend == "plain":
            after = _partitions(conn)
            assert not old_parts & after
            today = f"wifi_session_events_p{now.date():%Y%m%d}"
            assert today in after and "wifi_session_events_default" in after
        left = conn.execute("SELECT count(*) FROM occupancy_minute").fetchone()
        assert left == (8,)
        raw = conn.execute("SELECT count(*) FROM wifi_session_events").fetchone()
        assert raw == (2,)  # the same rows stay on both backends
    assert any("occupancy_minute: 7 rows" in line for line in lines)
    again = enforce(database_url, RetentionPolicy(minute_days=30), now=now, dry_run=True)
    assert again["occupancy_minute"] == 5
