"""How the Wi-Fi tables are laid out and reached, on both backends: which indexes the
written tables carry, and that the batch merge, the minute recompute and the live counts
find their rows through keys and indexes rather than scans of tables that hold the whole
retention period. (What the rows say is test_storage_sink's.)"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from stream.storage.packed_columns import column_params
from stream.wifi import sql as wifi_sql
from stream.wifi.batch import UNKNOWN_START
from tests.support.wifi_helpers import T0

pytestmark = pytest.mark.integration
#: Run on TimescaleDB and on plain PostgreSQL (conftest.pytest_generate_tests).
BOTH_BACKENDS = True
TIMEOUT = timedelta(minutes=5)


def test_written_tables_index_only_their_keys(database_url: str, db_backend: str) -> None:
    """Raw events and minute rollups carry their primary key and nothing else on both
    backends: TimescaleDB's create_hypertable used to add a time index to each (0701), one
    more B-tree per insert that plain PostgreSQL does not pay."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT tablename, indexname FROM pg_indexes"
            " WHERE schemaname = 'public' AND tablename = ANY(%s)",
            (["wifi_session_events", "occupancy_minute"],),
        ).fetchall()
    assert sorted(rows) == [
        ("occupancy_minute", "occupancy_minute_pkey"),
        ("wifi_session_events", "wifi_session_events_pkey"),
    ], db_backend


@pytest.mark.parametrize("packed", [True, False])
async def test_session_merge_probes_its_keys_whatever_the_table_size(
    database_url: str, packed: bool
) -> None:
    """The session merge reaches each session of a batch through the primary key. Planned as
    joins, it seq-scanned and sorted all of wifi_sessions twice per batch: 58 ms for 2,000
    sessions against 19,000 rows in `bench pipeline`, and growing with the table all day."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO wifi_sessions (site, session_id, client_id, ap, started_at, last_seen,"
            " ends_at) SELECT 'plan-' || (g % 20), 's' || g, 'c' || g, 'ap', now(), now(),"
            " now() + interval '15 minutes' FROM generate_series(1, 30000) g"
        )
        await conn.execute("ANALYZE wifi_sessions")
        keys = [(f"plan-{g % 20}", f"s{g}") for g in range(5000, 7000)]
        now = T0 + timedelta(hours=1)
        columns: list[list[object]] = [
            [s for s, _ in keys],
            [i for _, i in keys],
            ["c"] * len(keys),
            ["ap"] * len(keys),
            [now] * len(keys),
            [now] * len(keys),
            [None] * len(keys),
            [UNKNOWN_START] * len(keys),
        ]
        is_packed, values = column_params(columns, wifi_sql.SESSION_TYPES)
        assert is_packed
        if not packed:
            values = list(columns)
        params: dict[str, object] = dict(zip(wifi_sql.SESSION_COLUMNS, values, strict=True))
        params["timeout"] = TIMEOUT
        query = wifi_sql.UPSERT_SESSIONS_PACKED if packed else wifi_sql.UPSERT_SESSIONS
        cur = await conn.execute("EXPLAIN " + query, params)
        plan = "\n".join(row[0] for row in await cur.fetchall())
    assert "Seq Scan on wifi_sessions" not in plan, plan
    assert "Conflict Arbiter Indexes: wifi_sessions_pkey" in plan, plan


@pytest.mark.parametrize("queued_minutes", [1, 20])
async def test_rollups_and_live_counts_reach_sessions_through_the_index(
    database_url: str, queued_minutes: int
) -> None:
    """The minute recompute (every few seconds) and the live counts (every second) read
    only the sessions near the queued minutes, whichever way the recompute counts (minute
    by minute for one or two, a sweep for more). The recompute was planned as a hash join
    over a scan of all of wifi_sessions, which holds the whole retention period: 55 ms for
    200,000 sessions, every recompute. Statistics taken while nothing was queued (as
    autovacuum takes them) once made it read every site's sessions again for each queued
    minute: 10x the time, the pipeline's latency in seconds."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO wifi_sessions (site, session_id, client_id, ap, started_at, last_seen,"
            " ends_at) SELECT 'plan-' || (g % 20), 's' || g, 'c' || g, 'ap',"
            " now() - g * interval '1 s', now() - g * interval '1 s',"
            " now() - g * interval '1 s' + interval '15 minutes' FROM generate_series(1, 30000) g"
        )
        sites = [f"plan-{g}" for g in range(20)]
        await conn.execute(
            "INSERT INTO site_progress (site, first_minute, watermark, closed_through)"
            " SELECT s, now() - interval '1 hour', now(), now() FROM unnest(%s::text[]) s",
            (sites,),
        )
        # A queue that was used and emptied: pages, no rows (what autovacuum saw in the
        # pipeline benchmark when it analysed the table).
        await conn.execute(
            "INSERT INTO occupancy_dirty (site, minute) SELECT 'gone', now() - g * interval"
            " '1 minute' FROM generate_series(1, 2000) g"
        )
        await conn.execute("DELETE FROM occupancy_dirty")
        await conn.execute("ANALYZE")
        await conn.execute(
            "INSERT INTO occupancy_dirty (site, minute)"
            " SELECT s, date_trunc('minute', now()) - g * interval '1 minute'"
            " FROM unnest(%s::text[]) s, generate_series(0, %s - 1) g",
            (sites, queued_minutes),
        )
        for query in (wifi_sql.RECOMPUTE_DIRTY, wifi_sql.LIVE_OCCUPANCY):
            cur = await conn.execute("EXPLAIN " + query, (sites,))
            plan = "\n".join(row[0] for row in await cur.fetchall())
            assert "Seq Scan on wifi_sessions" not in plan, plan
            assert "wifi_sessions_site_ends_bin" in plan, plan
        async with conn.transaction(force_rollback=True):
            cur = await conn.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + wifi_sql.RECOMPUTE_DIRTY, (sites,)
            )
            plan_json = (await cur.fetchone())[0]  # type: ignore[index]
        scans = _session_scans(plan_json[0]["Plan"])
        assert scans and sum(scans) <= len(sites) * queued_minutes, scans


def _session_scans(node: dict[str, Any]) -> list[int]:
    """How many times each plan node reading wifi_sessions ran (EXPLAIN ANALYZE's loops)."""
    own = [node["Actual Loops"]] if node.get("Relation Name") == "wifi_sessions" else []
    return own + [n for child in node.get("Plans", []) for n in _session_scans(child)]
