"""Occupancy history: rollups re-bucketed with ``date_bin`` (PostgreSQL 14+).

Per bucket: ``connected`` as max and mean of the minute values (a peak and a typical
level), new and ended sessions summed. Buckets are aligned to midnight in the site's
time zone so a ``1d`` step means a local calendar day. Buckets with no rollup rows are
still returned, with ``minutes = 0`` and null values, so charts show gaps as gaps.

Steps of whole hours (on hour-aligned zones) read the hourly series ``occupancy_hourly``
(a TimescaleDB continuous aggregate, or a view on plain PostgreSQL) for every hour fully
inside the range and the minute rollups only for the partial hours at its edges: 30 days
hourly is 720 aggregate rows instead of 43,200 minutes, with the same values, because
the aggregate keeps the sum and count behind each mean.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from psycopg_pool import AsyncConnectionPool

#: Short step names accepted besides ISO-8601 durations.
STEP_ALIASES = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
#: ISO-8601 durations of fixed length: weeks, days, hours, minutes, seconds (no months/years,
#: which have no fixed length and which ``date_bin`` refuses).
_ISO_DURATION = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)
MAX_STEP = timedelta(days=366)

_QUERY = """
SELECT date_bin(%(step)s, minute, %(origin)s) AS bucket,
       max(connected) AS connected_max,
       avg(connected)::float8 AS connected_avg,
       sum(new_sessions)::bigint AS new_sessions,
       sum(ended_sessions)::bigint AS ended_sessions,
       count(*) AS minutes
FROM occupancy_minute
WHERE site = %(site)s AND minute >= %(start)s AND minute < %(end)s
GROUP BY bucket
ORDER BY bucket
"""


_HOURLY_QUERY = """
WITH parts AS (
    SELECT hour AS t, connected_max, connected_sum, minutes, new_sessions, ended_sessions
    FROM occupancy_hourly
    WHERE site = %(site)s AND hour >= %(hstart)s AND hour < %(hend)s
    UNION ALL  -- the edges as two ranges (not one with an OR): each reads only its chunk
    SELECT minute, connected, connected, 1, new_sessions, ended_sessions
    FROM occupancy_minute
    WHERE site = %(site)s AND minute >= %(start)s AND minute < %(hstart)s
    UNION ALL
    SELECT minute, connected, connected, 1, new_sessions, ended_sessions
    FROM occupancy_minute
    WHERE site = %(site)s AND minute >= %(hend)s AND minute < %(end)s
)
SELECT date_bin(%(step)s, t, %(origin)s) AS bucket,
       max(connected_max) AS connected_max,
       (sum(connected_sum)::float8 / sum(minutes)) AS connected_avg,
       sum(new_sessions)::bigint AS new_sessions,
       sum(ended_sessions)::bigint AS ended_sessions,
       sum(minutes)::bigint AS minutes
FROM parts
GROUP BY bucket
ORDER BY bucket
"""
#: Per-minute buckets are the rollup rows themselves: no grouping, rows come in key order
#: (``date_bin`` plus GROUP BY cost a sort and an aggregate, half the server time on 1,440).
_MINUTE_QUERY = """
SELECT minute AS bucket, connected AS connected_max, connected::float8 AS connected_avg,
       new_sessions::bigint AS new_sessions, ended_sessions::bigint AS ended_sessions,
       1::bigint AS minutes
FROM occupancy_minute
WHERE site = %(site)s AND minute >= %(start)s AND minute < %(end)s
ORDER BY minute
"""
#: Every bucket of the range as the response's JSON array, rendered by PostgreSQL around
#: one of the queries above (``data``): buckets without rows get ``minutes: 0`` and nulls.
#: Building 1,440 bucket objects in the API process cost 6-8 ms of CPU per request (and
#: its garbage-collection pauses); rendering them here costs the server about 2 ms.
#: Same text as ``OccupancyBucket``'s JSON: UTC times with ``Z``, shortest exact floats.
_AS_JSON = """
WITH data AS ({query})
SELECT '[' || string_agg(concat(
           '{{"start":"', to_char(g AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
           '","minutes":', coalesce(d.minutes, 0),
           ',"connected_max":', coalesce(d.connected_max::text, 'null'),
           ',"connected_avg":', coalesce(d.connected_avg::text, 'null'),
           ',"new_sessions":', coalesce(d.new_sessions::text, 'null'),
           ',"ended_sessions":', coalesce(d.ended_sessions::text, 'null'), '}}'),
       ',' ORDER BY g) || ']'
FROM generate_series(%(first)s::timestamptz, %(last)s::timestamptz, %(step)s) g
LEFT JOIN data d ON d.bucket = g
"""
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def _hourly_bounds(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The whole UTC hours inside ``[start, end)`` as ``[hstart, hend)`` (empty: equal)."""
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    hstart = epoch + -((epoch - start) // HOUR) * HOUR  # ceiling to the hour
    hend = epoch + ((end - epoch) // HOUR) * HOUR
    return (hstart, hend) if hstart < hend else (end, end)


def uses_hourly(step: timedelta, origin: datetime) -> bool:
    """Whether buckets are whole hours on hour boundaries (the aggregate can serve them)."""
    return step % HOUR == timedelta(0) and origin.minute == 0 and origin.second == 0


def parse_step(text: str) -> timedelta:
    """``1m``/``5m``/``15m``/``1h``/``1d`` or an ISO-8601 duration such as ``PT30M``.

    Raises ValueError with a message fit for an API client.
    """
    if text in STEP_ALIASES:
        return STEP_ALIASES[text]
    match = _ISO_DURATION.match(text.upper()) if text.upper() not in ("P", "PT") else None
    if match is None or not any(match.groupdict().values()):
        raise ValueError(
            f"step {text!r} is not one of {', '.join(STEP_ALIASES)} "
            "or an ISO-8601 duration like PT30M (no months or years)"
        )
    parts = {k: int(v or 0) for k, v in match.groupdict().items()}
    step = timedelta(
        weeks=parts["w"], days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"]
    )
    if step < timedelta(minutes=1) or step % timedelta(minutes=1):
        raise ValueError(f"step {text!r} must be a whole number of minutes (data is per minute)")
    if step > MAX_STEP:
        raise ValueError(f"step {text!r} is longer than {MAX_STEP.days} days")
    return step


def iso_duration(step: timedelta) -> str:
    """Canonical ISO-8601 form of a whole-minute step (``PT5M``, ``P1D``, ``P1DT6H``)."""
    minutes = int(step.total_seconds()) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    time_part = (f"{hours}H" if hours else "") + (f"{mins}M" if mins else "")
    return "P" + (f"{days}D" if days else "") + (f"T{time_part}" if time_part else "")


def bucket_origin(timezone: str) -> datetime:
    """Local midnight of 2000-01-01 at the site, as a UTC instant.

    Buckets of whole days then start at local midnight. UTC (not the zone itself) because
    Python adds timedeltas to zoned datetimes in wall-clock time, PostgreSQL in absolute time.
    """
    return datetime(2000, 1, 1, tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def bucket_start(moment: datetime, step: timedelta, origin: datetime) -> datetime:
    """What ``date_bin(step, moment, origin)`` returns, computed in Python."""
    return origin + ((moment - origin) // step) * step


def count_buckets(start: datetime, end: datetime, step: timedelta, origin: datetime) -> int:
    first = bucket_start(start, step, origin)
    return -(-(end - first) // step)  # ceiling division


async def fetch_history_json(
    pool: AsyncConnectionPool,
    site: str,
    start: datetime,
    end: datetime,
    step: timedelta,
    origin: datetime,
) -> str:
    """Every bucket overlapping ``[start, end)``, including empty ones, as the JSON array
    of ``OccupancyBucket`` objects that the endpoint returns."""
    first = bucket_start(start, step, origin)
    last = first + (count_buckets(start, end, step, origin) - 1) * step
    params = {
        "step": step,
        "origin": origin,
        "site": site,
        "start": start,
        "end": end,
        "first": first,
        "last": last,
    }
    query = _QUERY
    if uses_hourly(step, origin):
        params["hstart"], params["hend"] = _hourly_bounds(start, end)
        query = _HOURLY_QUERY
    elif step == MINUTE and origin.second == 0 and origin.microsecond == 0:
        query = _MINUTE_QUERY
    async with pool.connection() as conn:
        cursor = await conn.execute(_AS_JSON.format(query=query), params)
        row = await cursor.fetchone()
    return str(row[0]) if row and row[0] else "[]"
