"""The occupancy sink: one PostgreSQL transaction per batch, exact under replays.

Why exact: the raw insert's ``ON CONFLICT DO NOTHING RETURNING`` names the events never
seen before, and only those touch sessions and rollups, in the same transaction. If the
worker dies before commit, nothing happened and Kafka redelivers (offsets are committed
only after this returns); if it dies after commit, the redelivered events are duplicates
and change nothing. Session merges are LEAST/GREATEST, so order does not matter either.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg

from stream.wifi import sql
from stream.wifi.batch import WifiSessionEvent, raw_row, summarise, unique_events
from stream.wifi.minutes import SessionChange, WindowChange, minutes_to_recompute

RAW_WRITERS = ("unnest", "copy")


@dataclass(frozen=True)
class LiveOccupancy:
    site: str
    connected: int
    as_of: datetime


@dataclass
class BatchResult:
    received: int
    inserted: int
    duplicates: int
    minutes_recomputed: int
    live: list[LiveOccupancy] = field(default_factory=list)
    db_seconds: float = 0.0


class OccupancySink:
    """Writes batches of Wi-Fi session events on one async connection (not thread-safe).

    ``session_timeout`` closes sessions whose stop never arrives; every worker writing
    to one database must use the same value, as it is baked into ``wifi_sessions.ends_at``.
    """

    def __init__(
        self,
        conn: psycopg.AsyncConnection,
        session_timeout: timedelta,
        raw_writer: str = "unnest",
    ) -> None:
        if not conn.autocommit:
            # Otherwise the first statement outside write() opens a transaction that never
            # ends and every batch silently becomes an uncommitted savepoint inside it.
            raise ValueError("OccupancySink needs an autocommit connection")
        if raw_writer not in RAW_WRITERS:
            raise ValueError(f"raw_writer must be one of {RAW_WRITERS}, not {raw_writer!r}")
        self.conn = conn
        self.session_timeout = session_timeout
        self.raw_writer = raw_writer

    async def write(self, events: Sequence[WifiSessionEvent]) -> BatchResult:
        """Store a batch and update sessions, rollups and live counts atomically."""
        started = time.perf_counter()
        unique, _ = unique_events(events)
        if not unique:
            return BatchResult(len(events), 0, len(events), 0)
        async with self.conn.transaction():
            await self.conn.execute(sql.LOCK_SITES, (sorted({e.site for e in unique}),))
            inserted = await self._insert_raw(unique)
            new = [e for e in unique if (e.event_time, e.id) in inserted]
            minutes, live = await self._apply(new) if new else (0, [])
        return BatchResult(
            received=len(events),
            inserted=len(new),
            duplicates=len(events) - len(new),
            minutes_recomputed=minutes,
            live=live,
            db_seconds=time.perf_counter() - started,
        )

    async def _insert_raw(self, events: Sequence[WifiSessionEvent]) -> set[tuple[datetime, str]]:
        rows = [raw_row(e) for e in events]
        async with self.conn.cursor() as cur:
            if self.raw_writer == "copy":
                await cur.execute(sql.CREATE_RAW_STAGE)
                async with cur.copy(sql.COPY_RAW_STAGE) as copy:
                    for row in rows:
                        await copy.write_row(row)
                await cur.execute(sql.INSERT_RAW_FROM_STAGE)
            else:
                await cur.execute(
                    sql.INSERT_RAW_UNNEST, [list(col) for col in zip(*rows, strict=True)]
                )
            return {(t, i) for t, i in await cur.fetchall()}

    async def _apply(self, new: Sequence[WifiSessionEvent]) -> tuple[int, list[LiveOccupancy]]:
        summary = summarise(new)
        deltas = list(summary.sessions.values())
        async with self.conn.cursor() as cur:
            await cur.execute(
                sql.UPSERT_SESSIONS,
                {
                    "site": [d.site for d in deltas],
                    "session_id": [d.session_id for d in deltas],
                    "client_id": [d.client_id for d in deltas],
                    "ap": [d.ap for d in deltas],
                    "first_seen": [d.first_seen for d in deltas],
                    "last_seen": [d.last_seen for d in deltas],
                    "stopped_at": [d.stopped_at for d in deltas],
                    "timeout": self.session_timeout,
                },
            )
            changes = [SessionChange(*row) for row in await cur.fetchall()]
            sites = sorted(summary.sites)
            await cur.execute(
                sql.UPSERT_PROGRESS,
                (
                    sites,
                    [summary.sites[s].first for s in sites],
                    [summary.sites[s].last for s in sites],
                ),
            )
            windows = [WindowChange(*row) for row in await cur.fetchall()]
            recomputed = await self._recompute(cur, minutes_to_recompute(changes, windows))
            await cur.execute(sql.LIVE_OCCUPANCY, (sites,))
            live = [LiveOccupancy(s, int(n), wm) for s, wm, n in await cur.fetchall()]
        return recomputed, live

    async def _recompute(
        self, cur: psycopg.AsyncCursor[tuple[object, ...]], pairs: list[tuple[str, datetime]]
    ) -> int:
        if pairs:
            await cur.execute(sql.RECOMPUTE_MINUTES, ([s for s, _ in pairs], [m for _, m in pairs]))
        return len(pairs)

    async def close_lagging_sites(self, horizon: timedelta) -> int:
        """Materialise minutes of sites without recent events up to the newest watermark.

        A quiet site still has clients connected (until their sessions end or time out), so
        its minutes must be rolled up even though no event arrives to trigger it. Sites
        silent for longer than ``horizon`` are considered decommissioned and left alone.
        Returns the number of minutes recomputed.
        """
        async with self.conn.transaction(), self.conn.cursor() as cur:
            await cur.execute(sql.LAGGING_SITES, (horizon,))
            sites = sorted(row[0] for row in await cur.fetchall())
            if not sites:
                return 0
            await cur.execute(sql.LOCK_SITES, (sites,))
            await cur.execute(sql.CLOSE_SITES, (sites,))
            windows = [
                WindowChange(site, first, old, first, new)
                for site, first, old, new in await cur.fetchall()
            ]
            return await self._recompute(cur, minutes_to_recompute([], windows))
