"""The occupancy sink: one PostgreSQL transaction per batch, exact under replays.

Why exact: the raw insert's ``ON CONFLICT DO NOTHING RETURNING`` names the events never
seen before, and only those touch sessions and rollups, in the same transaction. If the
worker dies before commit, nothing happened and Kafka redelivers (offsets are committed
only after this returns); if it dies after commit, the redelivered events are duplicates
and change nothing. Session merges are LEAST/GREATEST, so order does not matter either.

Rollups are not recomputed in every batch: the batch queues the minutes it invalidated in
``occupancy_dirty`` (same transaction, so a crash cannot lose them) and :meth:`flush_due`
recomputes them at most every ``rollup_interval`` seconds (0: after every batch). Each
recompute counts all clients connected in a minute, thousands at a busy site: a minute
being filled is recomputed once per interval for as long as events arrive in it (60 times
a minute at 1 s), and it was the database's largest cost after the session merge. The
live counts (clients connected at each site's watermark, one cheap index read) have their
own ``live_interval``, so the IOC's live numbers stay fresh while rollups are batched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from schemas.stream_out import OccupancyUpdateV1
from stream.storage.packed_columns import column_params
from stream.wifi import sql
from stream.wifi.batch import WifiSessionEvent, raw_row, summarise, unique_events
from stream.wifi.minutes import SessionChange, WindowChange, minutes_to_recompute

RAW_WRITERS = ("unnest", "copy")


@dataclass
class BatchResult:
    received: int
    inserted: int
    duplicates: int
    minutes_recomputed: int
    live: list[OccupancyUpdateV1] = field(default_factory=list)
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
        rollup_interval: float = 0.0,
        live_interval: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
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
        self.rollup_interval = rollup_interval
        self.live_interval = live_interval
        self._clock = clock
        self._pending: set[str] = set()  # sites with minutes queued by this sink
        self._unread: set[str] = set()  # sites with events since their last live count
        self._flushed_at = -float("inf")
        self._live_at = -float("inf")

    async def write(self, events: Sequence[WifiSessionEvent]) -> BatchResult:
        """Store a batch, its sessions and its queued minutes in one transaction, then
        recompute rollups and read live counts if their intervals are due."""
        started = time.perf_counter()
        unique, _ = unique_events(events)
        if not unique:
            return BatchResult(len(events), 0, len(events), 0)
        async with self.conn.transaction():
            await self.conn.execute(sql.LOCK_SITES, (sorted({e.site for e in unique}),))
            new = await self._insert_raw(unique)
            if new:
                await self._apply(new)
        minutes, live = await self.flush_due()
        return BatchResult(
            received=len(events),
            inserted=len(new),
            duplicates=len(events) - len(new),
            minutes_recomputed=minutes,
            live=live,
            db_seconds=time.perf_counter() - started,
        )

    async def _insert_raw(self, events: Sequence[WifiSessionEvent]) -> Sequence[WifiSessionEvent]:
        """Insert the raw rows of ``events`` (distinct keys); return those not stored before.

        The database says how many rows it stored, and which only when not all: the usual
        batch, with no replays, needs no keys sent back nor events matched against them.
        """
        rows = [raw_row(e) for e in events]
        n = len(rows)
        async with self.conn.cursor() as cur:
            if self.raw_writer == "copy":
                await cur.execute(sql.CREATE_RAW_STAGE)
                async with cur.copy(sql.COPY_RAW_STAGE) as copy:
                    for row in rows:
                        await copy.write_row(row)
                await cur.execute(sql.INSERT_RAW_FROM_STAGE, (n, n))
            else:
                packed, values = column_params(list(zip(*rows, strict=True)), sql.RAW_TYPES)
                query = sql.INSERT_RAW_PACKED if packed else sql.INSERT_RAW_UNNEST
                await cur.execute(query, [*values, n, n])
            answer = await cur.fetchone()  # an aggregate: always one row
            assert answer is not None
            stored, times, ids = answer
        if stored == n:
            return events
        inserted = set(zip(times or (), ids or (), strict=True))
        return [e for e in events if (e.event_time, e.id) in inserted]

    async def _apply(self, new: Sequence[WifiSessionEvent]) -> None:
        """Merge sessions and site windows; queue the minutes whose rollups they change."""
        summary = summarise(new, by_start=True)
        deltas = list(summary.sessions.values())
        columns: list[Sequence[object]] = [
            [d.site for d in deltas],
            [d.session_id for d in deltas],
            [d.client_id for d in deltas],
            [d.ap for d in deltas],
            [d.first_seen for d in deltas],
            [d.last_seen for d in deltas],
            [d.stopped_at for d in deltas],
            [d.session_start for d in deltas],
        ]
        packed, values = column_params(columns, sql.SESSION_TYPES)
        query = sql.UPSERT_SESSIONS_PACKED if packed else sql.UPSERT_SESSIONS
        params: dict[str, object] = dict(zip(sql.SESSION_COLUMNS, values, strict=True))
        params["timeout"] = self.session_timeout
        async with self.conn.cursor() as cur:
            # Binary results: the server formatting four timestamps of every changed session
            # as text (a time-zone conversion each) cost more than psycopg parsing them.
            await cur.execute(query, params, binary=True)
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
            await self._mark(cur, minutes_to_recompute(changes, windows))
        self._pending.update(sites)
        self._unread.update(sites)

    async def _mark(
        self, cur: psycopg.AsyncCursor[tuple[object, ...]], pairs: list[tuple[str, datetime]]
    ) -> None:
        if pairs:
            await cur.execute(sql.MARK_DIRTY, ([s for s, _ in pairs], [m for _, m in pairs]))

    async def flush_due(self) -> tuple[int, list[OccupancyUpdateV1]]:
        """Recompute this sink's queued minutes if ``rollup_interval`` has passed since the
        last recompute, and read the live counts of sites with new events if
        ``live_interval`` has passed since the last read.

        Returns (minutes recomputed, live counts)."""
        now = self._clock()
        minutes = 0
        if self._pending and now - self._flushed_at >= self.rollup_interval:
            minutes = await self._recompute_pending()
        live: list[OccupancyUpdateV1] = []
        if self._unread and now - self._live_at >= self.live_interval:
            live = await self._read_live()
        return minutes, live

    async def flush(self) -> tuple[int, list[OccupancyUpdateV1]]:
        """Recompute every minute this sink queued and read its sites' live counts now.

        Returns (minutes recomputed, live counts)."""
        return await self._recompute_pending(), await self._read_live()

    async def _recompute_pending(self) -> int:
        self._flushed_at = self._clock()
        sites = sorted(self._pending)
        minutes = await self._recompute(sites)
        self._pending.difference_update(sites)
        return minutes

    async def _recompute(self, sites: list[str]) -> int:
        """Recompute the queued minutes of ``sites`` under their locks; returns how many."""
        if not sites:
            return 0
        async with self.conn.transaction(), self.conn.cursor() as cur:
            await cur.execute(sql.LOCK_SITES, (sites,))
            await cur.execute(sql.RECOMPUTE_DIRTY, (sites,))
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def _read_live(self) -> list[OccupancyUpdateV1]:
        """Clients connected at the watermark of each site with new events (one statement:
        one snapshot, so no lock is needed)."""
        self._live_at = self._clock()
        sites = sorted(self._unread)
        if not sites:
            return []
        async with self.conn.cursor() as cur:
            await cur.execute(sql.LIVE_OCCUPANCY, (sites,))
            now = datetime.now(UTC)  # re-stamped when sent (the throttle may hold it)
            live = [
                OccupancyUpdateV1(site=s, connected=int(n), as_of=wm, emitted_at=now)
                for s, wm, n in await cur.fetchall()
            ]
        self._unread.difference_update(sites)
        return live

    async def close_lagging_sites(self, horizon: timedelta) -> int:
        """Materialise minutes of sites without recent events up to the newest watermark.

        A quiet site still has clients connected (until their sessions end or time out), so
        its minutes must be rolled up even though no event arrives to trigger it. Sites
        silent for longer than ``horizon`` are considered decommissioned and left alone.
        Also recomputes the minutes other sinks queued and left (a crashed worker's); this
        sink's own are left to :meth:`flush_due`. Returns the number of minutes recomputed.
        """
        async with self.conn.transaction(), self.conn.cursor() as cur:
            await cur.execute(sql.LAGGING_SITES, (horizon,))
            sites = sorted(row[0] for row in await cur.fetchall())
            if sites:
                await cur.execute(sql.LOCK_SITES, (sites,))
                await cur.execute(sql.CLOSE_SITES, (sites,))
                windows = [
                    WindowChange(site, first, old, first, new)
                    for site, first, old, new in await cur.fetchall()
                ]
                await self._mark(cur, minutes_to_recompute([], windows))
            await cur.execute(sql.DIRTY_SITES)
            orphans = sorted({row[0] for row in await cur.fetchall()} - self._pending)
        return await self._recompute(orphans)
