"""Retention: drop what is older than each table's keep period.

Raw per-client data (events, sessions, presence) is kept 30 days, minute rollups 90 days,
hourly rollups and flows 2 years by default. On plain PostgreSQL raw events sit in daily
partitions, so whole partitions are dropped (instant, no vacuum debt); everything else is
deleted in batches of ``batch`` rows, each its own transaction, so the job never holds long
locks against the stream workers. With TimescaleDB the hypertables carry retention policies
with the same periods (migration 0700); this job then drops their whole chunks past the
cutoff (``drop_chunks``, what the policies do) and deletes what is left in chunks that
straddle it, so both backends keep exactly the same rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

_PARTITION = re.compile(r"^wifi_session_events_p(\d{8})$")


@dataclass(frozen=True)
class RetentionPolicy:
    raw_days: int = 30
    minute_days: int = 90
    hourly_days: int = 730
    #: The portal's privacy notice promises deletion after 12 months.
    portal_days: int = 365

    def tables(self, timescale: bool = False) -> list[tuple[str, str, int]]:
        """(table, time column, days kept) of every table cleaned by rows (or chunks)."""
        raw = "wifi_session_events" if timescale else "wifi_session_events_default"
        return [
            (raw, "event_time", self.raw_days),
            ("wifi_sessions", "ends_at", self.raw_days),
            ("visitor_sessions", "end_seen", self.raw_days),
            ("visitor_presence", "day", self.raw_days),
            ("occupancy_minute", "minute", self.minute_days),
            ("flow_hourly", "hour", self.hourly_days),
            ("flow_daily", "day", self.hourly_days),
            ("flow_od_hourly", "hour", self.hourly_days),
            # Impressions and clicks go with their visit (ON DELETE CASCADE).
            ("portal_visits", "created_at", self.portal_days),
            ("portal_consents", "given_at", self.portal_days),
        ]


def _timescale(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return bool(row and row[0])


def _hypertables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
    return {str(r[0]) for r in rows.fetchall()}


def drop_old_partitions(conn: psycopg.Connection, cutoff: date, dry_run: bool = False) -> list[str]:
    """Drop daily raw-event partitions whose whole day is before ``cutoff``."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'wifi_session_events'::regclass ORDER BY 1"
    ).fetchall()
    dropped = []
    for (name,) in rows:
        m = _PARTITION.match(name)
        if m and datetime.strptime(m.group(1), "%Y%m%d").date() < cutoff:
            if not dry_run:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
            dropped.append(name)
    return dropped


def delete_older(
    conn: psycopg.Connection, table: str, column: str, cutoff: datetime, batch: int
) -> int:
    """Delete rows with ``column < cutoff`` in batches; return how many were deleted."""
    if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,):
        return 0
    stmt = sql.SQL(
        "DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} WHERE {c} < %s LIMIT %s))"
    ).format(t=sql.Identifier(table), c=sql.Identifier(column))
    total = 0
    while True:
        n = conn.execute(stmt, (cutoff, batch)).rowcount
        total += n
        if n < batch:
            return total


def enforce(
    database_url: str,
    policy: RetentionPolicy,
    now: datetime | None = None,
    batch: int = 5000,
    dry_run: bool = False,
    say: Callable[[str], None] = lambda _line: None,
) -> dict[str, int]:
    """Apply ``policy``; return removed counts per table (partitions count as one each)."""
    now = now or datetime.now(UTC)
    removed: dict[str, int] = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        raw_cutoff = now - timedelta(days=policy.raw_days)
        timescale = _timescale(conn)
        hypertables = _hypertables(conn) if timescale else set()
        if not timescale:
            parts = drop_old_partitions(conn, raw_cutoff.date(), dry_run)
            removed["wifi_session_events (partitions)"] = len(parts)
            say(f"raw partitions before {raw_cutoff.date()}: {len(parts)} dropped")
        for table, column, days in policy.tables(timescale):
            cutoff = now - timedelta(days=days)
            if dry_run:
                n = _count_older(conn, table, column, cutoff)
            elif table in hypertables:
                n = _count_older(conn, table, column, cutoff)
                # A date-partitioned table (presence, daily flows) takes a date.
                older: datetime | date = cutoff.date() if column == "day" else cutoff
                conn.execute("SELECT drop_chunks(%s, older_than => %s)", (table, older))
                delete_older(conn, table, column, cutoff, batch)
            else:
                n = delete_older(conn, table, column, cutoff, batch)
            removed[table] = n
            verb = "would be removed" if dry_run else "removed"
            say(f"{table}: {n} rows older than {cutoff:%Y-%m-%d %H:%M} {verb}")
    return removed


def _count_older(conn: psycopg.Connection, table: str, column: str, cutoff: datetime) -> int:
    if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,):
        return 0
    q = sql.SQL("SELECT count(*) FROM {} WHERE {} < %s").format(
        sql.Identifier(table), sql.Identifier(column)
    )
    row = conn.execute(q, (cutoff,)).fetchone()
    return int(row[0]) if row else 0
