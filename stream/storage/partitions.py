"""Daily partitions of the raw event table, created ahead of the data.

Events whose day has no partition land in the default partition, which works but makes
later partition creation for that day impossible and slows pruning; so the migrator and
every worker (on start, then hourly) create yesterday .. today + DAYS_AHEAD.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg

#: Days created ahead of today: a worker that is down for a long weekend still finds them.
DAYS_AHEAD = 7
_SQL = "SELECT tp_ensure_event_partitions(%s::date, %s)"


def _window(today: date | None) -> tuple[date, int]:
    start = (today or datetime.now(UTC).date()) - timedelta(days=1)
    return start, DAYS_AHEAD + 2


def ensure_event_partitions_sync(conn: psycopg.Connection, today: date | None = None) -> int:
    """Create missing daily partitions; return how many were created."""
    row = conn.execute(_SQL, _window(today)).fetchone()
    return int(row[0]) if row else 0


async def ensure_event_partitions(conn: psycopg.AsyncConnection, today: date | None = None) -> int:
    """Async twin of :func:`ensure_event_partitions_sync` for the worker's event loop."""
    cur = await conn.execute(_SQL, _window(today))
    row = await cur.fetchone()
    return int(row[0]) if row else 0
