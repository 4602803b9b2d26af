"""Visitor flows for the IOC: the k-suppressed origin-destination matrix and hourly
presence per site, read from the flows worker's tables (migration 0300_flows.sql).

Only ``flow_od_public(k)`` is ever read for OD cells, so a cell below k can never leave the
database through this API. A whole-day matrix is the sum of the *published* hourly cells
(a lower bound, flagged as such): summing raw cells first and suppressing after would let
anyone subtract the published hours and recover the suppressed remainder.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from api.deps import PoolDep, SiteDep
from api.ioc.auth import IocDep
from api.models import ERROR_RESPONSES

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

router = APIRouter(prefix="/api/v1", tags=["flows"])

OD_SQL = """
SELECT origin, destination, sum(clients)::int AS clients,
       CASE WHEN bool_and(clients_stable IS NOT NULL) THEN sum(clients_stable)::int END
           AS clients_stable,
       bool_and(final) AS final, count(*)::int AS hours
FROM flow_od_public(%(k)s)
WHERE day = %(day)s AND (%(hour)s::timestamptz IS NULL OR hour = %(hour)s)
GROUP BY origin, destination
ORDER BY clients DESC, origin, destination
"""

HOURLY_SQL = """
SELECT site, hour, day, unique_visitors, unique_visitors_stable, new_visitors,
       returning_visitors, dwell_sessions, dwell_median_s, dwell_p90_s, peak_connected,
       avg_connected, final
FROM flow_hourly
WHERE day = %(day)s AND (%(site)s::text IS NULL OR site = %(site)s)
ORDER BY site, hour
"""


class OdCell(BaseModel):
    origin: str
    destination: str
    clients: int = Field(description="Clients seen at origin, then at destination.")
    clients_stable: int | None = Field(description="The same without randomised MACs, if >= k.")
    final: bool = Field(description="Every hour summed is settled (past allowed lateness).")
    hours: int = Field(description="Published hourly cells summed into this one.")


class OdMatrix(BaseModel):
    date: date
    hour: int | None
    min_count: int = Field(description="k: cells with fewer clients are suppressed.")
    lower_bound: bool = Field(description="True for a whole day: suppressed hours are left out.")
    cells: list[OdCell]


def local_hour(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=LOCAL_TZ)


def today() -> date:
    return datetime.now(LOCAL_TZ).date()


DateQuery = Annotated[
    date | None, Query(description="Local (Asia/Ho_Chi_Minh) date; default today.")
]
HourQuery = Annotated[
    int | None, Query(ge=0, le=23, description="Local hour 0-23; default the whole day.")
]


@router.get(
    "/flows/od",
    response_model=OdMatrix,
    summary="Origin-destination matrix between sites (k-suppressed)",
    responses={422: ERROR_RESPONSES[422], 503: ERROR_RESPONSES[503]},
)
async def od_matrix(
    pool: PoolDep, ioc: IocDep, date: DateQuery = None, hour: HourQuery = None
) -> OdMatrix:
    """A client seen at A and later the same day at B counts once in A->B, in the hour it
    arrived at B. Cells under k clients are left out, never rounded."""
    day = date or today()
    k = ioc.settings.od_min_count
    params = {"k": k, "day": day, "hour": local_hour(day, hour) if hour is not None else None}
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(OD_SQL, params)
        rows = await cur.fetchall()
    return OdMatrix(
        date=day,
        hour=hour,
        min_count=k,
        lower_bound=hour is None,
        cells=[OdCell(**r) for r in rows],
    )


async def hourly_rows(pool: PoolDep, day: date, site: str | None) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(HOURLY_SQL, {"day": day, "site": site})
        return await cur.fetchall()


#: Client counts of the public hourly rows, and the statistics computed from each.
SUPPRESSIBLE = {
    "unique_visitors": (),
    "unique_visitors_stable": (),
    "new_visitors": (),
    "returning_visitors": (),
    "dwell_sessions": ("dwell_median_s", "dwell_p90_s"),
}


def k_suppress(row: dict[str, Any], k: int) -> dict[str, Any]:
    """Counts below ``k`` (and statistics over them) become null, listed in
    ``suppressed``: at a quiet site at 3 a.m., "1 new visitor, dwell 4 h" singles a
    person out. Occupancy gauges (peak/avg connected) are not per-client and stay."""
    suppressed = []
    for count, derived in SUPPRESSIBLE.items():
        value = row.get(count)
        if value is not None and value < k:
            suppressed += [count, *derived]
    return {
        **{c: (None if c in suppressed else v) for c, v in row.items()},
        "suppressed": suppressed,
    }


@router.get(
    "/sites/{site}/flows/hourly",
    summary="Hourly visitors, dwell and occupancy peaks of one site for one local day",
    responses={404: ERROR_RESPONSES[404], 503: ERROR_RESPONSES[503]},
)
async def site_hourly(
    pool: PoolDep, ioc: IocDep, site: SiteDep, date: DateQuery = None
) -> dict[str, Any]:
    """Public: client counts below k (`min_count`) are null and named in `suppressed`."""
    day = date or today()
    k = ioc.settings.od_min_count
    rows = [k_suppress(r, k) for r in await hourly_rows(pool, day, site.id)]
    for r in rows:
        r["hour"] = r["hour"].isoformat()
        r["day"] = r["day"].isoformat()
    return {"site": site.id, "date": day.isoformat(), "min_count": k, "hours": rows}


def hour_bounds(hour: datetime) -> tuple[datetime, datetime]:
    return hour, hour + timedelta(hours=1)
