"""Per-promo, per-variant conversion: impression → accepted → granted → Wi-Fi seen → click.

"Wi-Fi session seen" joins the portal visit with ``wifi_sessions`` on the pseudonymous
client id at the same site, from shortly before the grant on: the id is the same keyed
hash the Wi-Fi edge uses, so the join works without either side knowing the MAC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

STAGES = ("impressions", "accepted", "granted", "session_seen", "clicked")

_QUERY = """
WITH v AS (
    SELECT v.*, EXISTS (
        SELECT 1 FROM wifi_sessions w
        WHERE w.site = v.site AND w.client_id = v.client_id
          AND v.granted_at IS NOT NULL
          AND w.last_seen >= v.granted_at - interval '10 minutes'
    ) AS seen
    FROM portal_visits v
    WHERE v.created_at >= %(since)s AND v.created_at < %(until)s
      AND (%(site)s::text IS NULL OR v.site = %(site)s)
)
SELECT i.promo_id AS promo, i.variant,
       count(*) AS impressions,
       count(v.accepted_at) AS accepted,
       count(v.granted_at) AS granted,
       count(*) FILTER (WHERE v.seen) AS session_seen,
       count(c.portal_session) AS clicked
FROM portal_promo_impressions i
JOIN v USING (portal_session)
LEFT JOIN portal_promo_clicks c
       ON c.portal_session = i.portal_session AND c.promo_id = i.promo_id
GROUP BY i.promo_id, i.variant
ORDER BY i.promo_id, i.variant
"""

_TOTALS = """
SELECT count(*) AS visits, count(accepted_at) AS accepted, count(granted_at) AS granted,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM wifi_sessions w WHERE w.site = v.site AND w.client_id = v.client_id
             AND v.granted_at IS NOT NULL AND w.last_seen >= v.granted_at - interval '10 minutes'
       )) AS session_seen
FROM portal_visits v
WHERE v.created_at >= %(since)s AND v.created_at < %(until)s
  AND (%(site)s::text IS NULL OR v.site = %(site)s)
"""


def _rates(row: dict[str, Any], base: str) -> dict[str, float | None]:
    n = row[base]
    return {k: (round(row[k] / n, 4) if n else None) for k in row if k in STAGES and k != base}


async def funnel(
    pool: AsyncConnectionPool, since: datetime, until: datetime, site: str | None
) -> dict[str, Any]:
    params = {"since": since, "until": until, "site": site}
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_QUERY, params)
        rows = await cur.fetchall()
        await cur.execute(_TOTALS, params)
        totals = await cur.fetchone() or {}
    promos = [{**r, "rates": _rates(r, "impressions")} for r in rows]
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "site": site,
        "totals": dict(totals),
        "promos": promos,
    }
