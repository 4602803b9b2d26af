"""Same-hour-of-week baselines for the anomaly rule, from the minute rollups.

For hour H of weekday D, the baseline is the mean connected-client count in that hour
over each of the past ``weeks`` weeks (one value per week that has data). Values are cached
per (site, hour) because the answer only changes when the hour does.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from psycopg_pool import AsyncConnectionPool


class BaselineSource:
    def __init__(self, pool: AsyncConnectionPool, weeks: int = 8) -> None:
        self._pool = pool
        self._weeks = weeks
        self._cache: dict[tuple[str, datetime], list[float]] = {}

    async def values(self, site: str, at: datetime) -> list[float]:
        hour = at.replace(minute=0, second=0, microsecond=0)
        key = (site, hour)
        if key not in self._cache:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = await self._query(site, hour)
        return self._cache[key]

    async def _query(self, site: str, hour: datetime) -> list[float]:
        out: list[float] = []
        async with self._pool.connection() as conn:
            for week in range(1, self._weeks + 1):
                start = hour - timedelta(weeks=week)
                cur = await conn.execute(
                    "SELECT avg(connected)::float8 FROM occupancy_minute WHERE site = %s"
                    " AND minute >= %s AND minute < %s",
                    (site, start, start + timedelta(hours=1)),
                )
                row = await cur.fetchone()
                if row and row[0] is not None:
                    out.append(float(row[0]))
        return out
