"""The flows sink: idempotent merges per batch, debounced recompute of derived rows.

Why exact under kill -9 without a stream framework's state stores: a batch's session and
presence merges are LEAST / GREATEST / bit-OR upserts (replaying a batch changes nothing)
and the keys they dirty are written in the same transaction; the recompute takes dirty
keys and rewrites the derived rows in one transaction. A crash anywhere leaves either the
old or the new state plus the dirty keys that lead from one to the other.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import psycopg

from stream.flows import sql
from stream.flows.presence import (
    HOUR,
    DayPresence,
    hour_bit,
    hour_start,
    hours_of,
    local_day,
    split_by_day,
)
from stream.wifi.batch import WifiSessionEvent, summarise

Cursor = psycopg.AsyncCursor[tuple[object, ...]]
#: A watermark before any data: nothing has timed out yet.
NEVER = datetime(1970, 1, 1).astimezone()


@dataclass(frozen=True)
class FlowsConfig:
    """Rules every flows worker of one database must share (they shape stored rows)."""

    session_timeout: timedelta = timedelta(minutes=15)
    lateness: timedelta = timedelta(hours=2)
    min_count: int = 10


@dataclass
class BatchOutcome:
    sessions: int
    dirty_hours: int
    too_late: int
    db_seconds: float


@dataclass(frozen=True)
class HourlyUpdate:
    site: str
    hour: datetime
    day: date
    unique_visitors: int
    unique_visitors_stable: int
    new_visitors: int
    returning_visitors: int
    dwell_sessions: int
    dwell_median_s: float | None
    dwell_p90_s: float | None
    peak_connected: int | None
    avg_connected: float | None
    final: bool
    inflows: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class RecomputeOutcome:
    hours: int = 0
    days: int = 0
    skipped_final: int = 0
    updates: list[HourlyUpdate] = field(default_factory=list)


@dataclass
class _Presence:
    randomized: bool
    first_seen: datetime
    last_seen: datetime
    hours: int


class FlowsSink:
    """Writes batches and recomputes on one async connection (not thread-safe)."""

    def __init__(self, conn: psycopg.AsyncConnection, config: FlowsConfig) -> None:
        self.conn = conn
        self.config = config

    async def write(self, events: Sequence[WifiSessionEvent]) -> BatchOutcome:
        started = time.perf_counter()
        if not events:
            return BatchOutcome(0, 0, 0, 0.0)
        summary = summarise(events)
        randomized = {(e.site, e.data.session_id) for e in events if e.data.randomized_mac}
        deltas = list(summary.sessions.values())
        newest = max(e.event_time for e in events)
        async with self.conn.transaction(), self.conn.cursor() as cur:
            await cur.execute(sql.ADVANCE_WATERMARK, (newest,))
            row = await cur.fetchone()
            assert row is not None
            old_wm: datetime = row[0] or NEVER
            new_wm: datetime = row[1]
            await cur.execute(
                sql.UPSERT_SESSIONS,
                {
                    "site": [d.site for d in deltas],
                    "session_id": [d.session_id for d in deltas],
                    "client_id": [d.client_id for d in deltas],
                    "randomized": [(d.site, d.session_id) in randomized for d in deltas],
                    "first_seen": [d.first_seen for d in deltas],
                    "last_seen": [d.last_seen for d in deltas],
                    "stopped_at": [d.stopped_at for d in deltas],
                },
            )
            dirty: set[tuple[str, datetime]] = set()
            presence: dict[tuple[str, date, str], _Presence] = {}
            for site, client, rand, start, end, old_start, old_end in await cur.fetchall():
                if (old_start, old_end) != (start, end):  # dwell of the end hour(s) moved
                    dirty.add((str(site), hour_start(end)))
                    if old_end is not None:
                        dirty.add((str(site), hour_start(old_end)))
                for part in split_by_day(start, end):
                    _merge(presence, (str(site), part.day, str(client)), bool(rand), part)
            days = await self._upsert_presence(cur, presence, dirty)
            await _insert_dirty(cur, dirty, days)
            await cur.execute(
                sql.DIRTY_TIMED_OUT,
                {"old": old_wm, "new": new_wm, "timeout": self.config.session_timeout},
            )
        too_late = sum(1 for e in events if _is_final(e.event_time, old_wm, self.config))
        return BatchOutcome(len(deltas), len(dirty), too_late, time.perf_counter() - started)

    async def _upsert_presence(
        self,
        cur: Cursor,
        presence: dict[tuple[str, date, str], _Presence],
        dirty: set[tuple[str, datetime]],
    ) -> set[date]:
        """Merge presence rows; add the hours whose counts may change; return OD days."""
        keys = sorted(presence)
        await cur.execute(
            sql.UPSERT_PRESENCE,
            {
                "site": [k[0] for k in keys],
                "day": [k[1] for k in keys],
                "client_id": [k[2] for k in keys],
                "randomized": [presence[k].randomized for k in keys],
                "first_seen": [presence[k].first_seen for k in keys],
                "last_seen": [presence[k].last_seen for k in keys],
                "hours": [presence[k].hours for k in keys],
            },
        )
        od_days: set[date] = set()
        for site, day, o_rand, o_first, o_hours, n_rand, n_first, n_hours in await cur.fetchall():
            if o_first != n_first or o_rand != n_rand:
                changed = int(n_hours)  # type: ignore[call-overload]
                od_days.add(day)  # type: ignore[arg-type]
            else:
                changed = int(n_hours) & ~int(o_hours)  # type: ignore[call-overload]
            dirty.update((str(site), h) for h in hours_of(changed, day))  # type: ignore[arg-type]
        return od_days

    async def recompute(self, refresh_open: bool = False) -> RecomputeOutcome:
        """Rewrite derived rows of dirty keys, hours due for finalisation and (with
        ``refresh_open``) every open hour; return the hourly rows that changed."""
        cfg = self.config
        out = RecomputeOutcome()
        async with self.conn.transaction(), self.conn.cursor() as cur:
            await cur.execute(sql.LOCK_RECOMPUTE)
            await cur.execute(sql.GET_WATERMARK)
            row = await cur.fetchone()
            if row is None:
                return out
            wm = row[0]
            params = {"lateness": cfg.lateness, "wm": wm, "timeout": cfg.session_timeout}
            await cur.execute(sql.TAKE_DIRTY_HOURS)
            dirty = {(str(s), h) for s, h in await cur.fetchall()}
            await cur.execute(sql.COUNT_FINAL, _columns(sorted(dirty), 2))
            counted = await cur.fetchone()
            out.skipped_final = int(counted[0]) if counted else 0
            await cur.execute(sql.DUE_HOURS, params)
            due = {(str(s), h) for s, h in await cur.fetchall()}
            targets = dirty | due
            if refresh_open:
                await cur.execute(sql.OPEN_HOURS)
                targets |= {(str(s), h) for s, h in await cur.fetchall()}
            await cur.execute(sql.TAKE_DIRTY_DAYS)
            od_days = {d for (d,) in await cur.fetchall()} | {local_day(h) for _, h in due}
            keys = sorted(targets)
            changed: set[tuple[str, datetime]] = set()
            if keys:
                await cur.execute(
                    sql.RECOMPUTE_HOURLY,
                    {
                        **params,
                        "site": [s for s, _ in keys],
                        "hour": [h for _, h in keys],
                        "day": [local_day(h) for _, h in keys],
                        "bit": [hour_bit(h) for _, h in keys],
                    },
                )
                changed |= {(str(s), h) for s, h in await cur.fetchall()}
                site_days = sorted({(s, local_day(h)) for s, h in keys})
                await cur.execute(sql.RECOMPUTE_DAILY, _columns(site_days, 2))
                out.days = len(site_days)
            if od_days:
                changed |= await self._recompute_od(cur, sorted(od_days), params)
            out.hours = len(keys)
            if changed:
                await cur.execute(sql.FETCH_UPDATES, _columns(sorted(changed), 2))
                out.updates = [_update(r) for r in await cur.fetchall()]
        return out

    async def _recompute_od(
        self, cur: Cursor, days: list[date], params: dict[str, object]
    ) -> set[tuple[str, datetime]]:
        await cur.execute(sql.CREATE_OD_STAGE)
        await cur.execute(sql.STAGE_OD, (days,))
        await cur.execute(sql.DELETE_OD_GONE, (days,))
        changed = {(str(d), h) for d, h in await cur.fetchall()}
        await cur.execute(sql.UPSERT_OD, params)
        changed |= {(str(d), h) for d, h in await cur.fetchall()}
        return changed  # type: ignore[return-value]


def _merge(
    presence: dict[tuple[str, date, str], _Presence],
    key: tuple[str, date, str],
    randomized: bool,
    part: DayPresence,
) -> None:
    cur = presence.get(key)
    if cur is None:
        presence[key] = _Presence(randomized, part.first_seen, part.last_seen, part.hours)
    else:
        cur.randomized |= randomized
        cur.first_seen = min(cur.first_seen, part.first_seen)
        cur.last_seen = max(cur.last_seen, part.last_seen)
        cur.hours |= part.hours


async def _insert_dirty(cur: Cursor, hours: set[tuple[str, datetime]], days: set[date]) -> None:
    """Insert dirty keys in sorted order (a fixed lock order between transactions)."""
    if hours:
        await cur.execute(sql.INSERT_DIRTY_HOURS, _columns(sorted(hours), 2))
    if days:
        await cur.execute(sql.INSERT_DIRTY_DAYS, (sorted(days),))


def _columns(rows: Sequence[tuple[object, ...]], width: int) -> tuple[list[object], ...]:
    return tuple([r[i] for r in rows] for i in range(width))


def _is_final(t: datetime, watermark: datetime, cfg: FlowsConfig) -> bool:
    """Whether an event's hour was already settled when the event arrived."""
    return hour_start(t) + HOUR + cfg.lateness <= watermark


def _update(r: tuple[object, ...]) -> HourlyUpdate:
    origins, counts = r[13], r[14]
    return HourlyUpdate(*r[:13], list(zip(origins, counts, strict=True)))  # type: ignore[arg-type, call-overload, call-arg]
