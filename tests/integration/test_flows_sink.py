"""The flows sink against real PostgreSQL: exact unique visitors, new/returning, dwell and
OD counts under duplicates, reordering, replays and late events; finality; suppression."""

from __future__ import annotations

from datetime import UTC, timedelta

import psycopg
import pytest

from stream.flows import sql as flows_sql
from stream.flows.sink import FlowsConfig, FlowsSink
from tests.support.flows_helpers import DAY_START, expected_flows, visitor_day
from tests.support.wifi_helpers import disorder, make_event

pytestmark = pytest.mark.integration
#: Run on TimescaleDB and on plain PostgreSQL (conftest.pytest_generate_tests).
BOTH_BACKENDS = True
SITES = ["ben-thanh", "nha-tho", "dinh-doc-lap", "buu-dien"]
OPEN = FlowsConfig(session_timeout=timedelta(minutes=20), lateness=timedelta(days=2))


async def _sink(url: str, config: FlowsConfig = OPEN) -> FlowsSink:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True, options="-c timezone=UTC")
    return FlowsSink(conn, config)


async def _feed(sink: FlowsSink, events: list, batch: int) -> None:
    for i in range(0, len(events), batch):
        await sink.write(events[i : i + batch])
        if i % (batch * 4) == 0:
            await sink.recompute()  # recomputes interleaved with batches, as in the worker
    await sink.recompute(refresh_open=True)


async def _hourly(conn: psycopg.AsyncConnection) -> dict:
    cur = await conn.execute(
        "SELECT site, hour, unique_visitors, unique_visitors_stable, new_visitors, "
        "returning_visitors, dwell_sessions, dwell_median_s, dwell_p90_s FROM flow_hourly"
    )
    return {(r[0], r[1]): tuple(r[2:]) for r in await cur.fetchall()}


async def _od(conn: psycopg.AsyncConnection) -> dict:
    cur = await conn.execute(
        "SELECT hour, origin, destination, clients, clients_stable FROM flow_od_hourly"
    )
    return {(r[0], r[1], r[2]): (r[3], r[4]) for r in await cur.fetchall()}


def _close(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for key, row in expected.items():
        got = actual[key]
        assert got[:5] == row[:5], key
        for a, b in zip(got[5:], row[5:], strict=True):
            assert (a is None and b is None) or abs(a - b) < 1e-6, key


async def test_disordered_replayed_day_gives_exact_flows(database_url: str) -> None:
    events = visitor_day(300, SITES, seed=4)
    messy = disorder(events, seed=9)
    sink = await _sink(database_url)
    try:
        await _feed(sink, messy, batch=113)
        await _feed(sink, messy[::-1], batch=500)  # a full replay, in reverse: no change
        hourly, od = expected_flows(events, OPEN.session_timeout)
        _close(await _hourly(sink.conn), hourly)
        assert await _od(sink.conn) == od
        assert sum(n for n, _ in od.values()) > 50  # the day really has flows
        cur = await sink.conn.execute(
            "SELECT site, count(*) FROM visitor_presence GROUP BY site ORDER BY site"
        )
        daily = await sink.conn.execute(
            "SELECT site, unique_visitors FROM flow_daily ORDER BY site"
        )
        assert await daily.fetchall() == await cur.fetchall()
    finally:
        await sink.conn.close()


async def test_od_suppression_hides_nine_shows_ten(database_url: str) -> None:
    """10 clients go A -> B and 9 go A -> C in the same hour: only A -> B is published."""
    events = []
    for i in range(19):
        dest = "site-b" if i < 10 else "site-c"
        c = f"{i:016x}"
        t = DAY_START + timedelta(minutes=i)
        events += [
            make_event("start", "site-a", f"a{i}", c, t),
            make_event("stop", "site-a", f"a{i}", c, t + timedelta(minutes=5)),
            make_event("start", dest, f"d{i}", c, t + timedelta(minutes=20)),
        ]
    sink = await _sink(database_url)
    try:
        await sink.write(events)
        out = await sink.recompute()
        raw = await _od(sink.conn)
        assert {(o, d): n for (_, o, d), (n, _) in raw.items()} == {
            ("site-a", "site-b"): 10,
            ("site-a", "site-c"): 9,
        }
        cur = await sink.conn.execute("SELECT origin, destination, clients FROM flow_od_public(10)")
        assert await cur.fetchall() == [("site-a", "site-b", 10)]
        cur = await sink.conn.execute("SELECT count(*) FROM flow_od_published")
        assert await cur.fetchone() == (1,)
        inflows = {u.site: u.inflows for u in out.updates}
        assert inflows["site-b"] == [("site-a", 10)] and inflows["site-c"] == [("site-a", 9)]
    finally:
        await sink.conn.close()


async def test_late_event_corrects_open_hour_but_not_a_final_one(database_url: str) -> None:
    cfg = FlowsConfig(session_timeout=timedelta(minutes=20), lateness=timedelta(hours=1))
    t0 = DAY_START
    sink = await _sink(database_url, cfg)
    try:
        await sink.write([make_event("start", "s1", "x", "aa" * 8, t0)])
        await sink.recompute()
        # Watermark moves to t0 + 2h30: hour t0 is final (end t0+1h, +1h lateness).
        await sink.write([make_event("start", "s1", "y", "bb" * 8, t0 + timedelta(hours=2.5))])
        await sink.recompute()
        late = [
            make_event("start", "s1", "z", "cc" * 8, t0 + timedelta(minutes=10)),
            make_event("start", "s1", "w", "dd" * 8, t0 + timedelta(hours=1, minutes=40)),
        ]
        result = await sink.write(late)
        assert result.too_late == 1
        out = await sink.recompute()
        assert out.skipped_final == 1
        rows = await _hourly(sink.conn)
        assert rows[("s1", t0.astimezone(UTC))][0] == 1  # final: the late z is not counted
        assert rows[("s1", (t0 + timedelta(hours=1)).astimezone(UTC))][0] == 1  # w corrected
        cur = await sink.conn.execute("SELECT hour, final FROM flow_hourly ORDER BY hour")
        assert [f for _, f in await cur.fetchall()] == [True, False, False]
    finally:
        await sink.conn.close()


async def test_session_timing_out_enters_dwell_when_the_watermark_passes(
    database_url: str,
) -> None:
    sink = await _sink(database_url)  # 20 minute timeout
    t0 = DAY_START
    try:
        c = "aa" * 8
        await sink.write(
            [
                make_event("start", "s1", "x", c, t0),
                make_event("interim", "s1", "x", c, t0 + timedelta(minutes=7)),
            ]
        )
        await sink.recompute()
        assert (await _hourly(sink.conn))[("s1", t0.astimezone(UTC))][4] == 0
        await sink.write([make_event("start", "s2", "y", "bb" * 8, t0 + timedelta(minutes=30))])
        await sink.recompute()
        row = (await _hourly(sink.conn))[("s1", t0.astimezone(UTC))]
        assert row[4:] == (1, 420.0, 420.0)
    finally:
        await sink.conn.close()


async def test_merges_probe_their_keys_whatever_the_table_size(database_url: str) -> None:
    """Each batch's sessions and presence rows are found through their primary keys; the
    old joins seq-scanned both whole tables per batch (they only grow within retention)."""
    now = DAY_START + timedelta(hours=3)
    n = 2000
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO visitor_sessions (site, session_id, client_id, started_at, last_seen)"
            " SELECT 'plan-' || (g %% 20), 's' || g, 'c' || g, %(t)s, %(t)s"
            " FROM generate_series(1, 30000) g",
            {"t": now},
        )
        await conn.execute(
            "INSERT INTO visitor_presence (site, day, client_id, first_seen, last_seen, hours)"
            " SELECT 'plan-' || (g %% 20), %(d)s, 'c' || g, %(t)s, %(t)s, 1"
            " FROM generate_series(1, 30000) g",
            {"t": now, "d": now.date()},
        )
        await conn.execute("ANALYZE visitor_sessions")
        await conn.execute("ANALYZE visitor_presence")
        sites = [f"plan-{g % 20}" for g in range(5000, 5000 + n)]
        common = {"site": sites, "randomized": [False] * n, "first_seen": [now] * n}
        plans = {}
        for name, statement, params in [
            (
                "sessions",
                flows_sql.UPSERT_SESSIONS,
                {
                    **common,
                    "session_id": [f"s{g}" for g in range(5000, 5000 + n)],
                    "client_id": ["c"] * n,
                    "last_seen": [now] * n,
                    "stopped_at": [None] * n,
                },
            ),
            (
                "presence",
                flows_sql.UPSERT_PRESENCE,
                {
                    **common,
                    "day": [now.date()] * n,
                    "client_id": [f"c{g}" for g in range(5000, 5000 + n)],
                    "last_seen": [now] * n,
                    "hours": [1] * n,
                },
            ),
        ]:
            cur = await conn.execute("EXPLAIN " + statement, params)
            plans[name] = "\n".join(row[0] for row in await cur.fetchall())
    for name, plan in plans.items():
        assert "Seq Scan" not in plan, (name, plan)


async def test_interims_update_their_session_in_place(database_url: str) -> None:
    """An interim moves its session's last_seen, and with it end_seen; each was indexed, so
    no merge could be a heap-only (HOT) update. The indexes hold whole hours (migration
    1001), so an interim within the hour updates the row in place, and dwell stays right."""
    start = DAY_START + timedelta(hours=3, minutes=1)
    clients = [f"{i:02x}" * 8 for i in range(10)]
    sink = await _sink(database_url)
    try:
        await sink.write(
            [make_event("start", "hot", f"s{i}", c, start) for i, c in enumerate(clients)]
        )
        async with sink.conn.transaction():
            await sink.write(
                [
                    make_event(
                        "stop" if i == 0 else "interim",
                        "hot",
                        f"s{i}",
                        c,
                        start + timedelta(minutes=5),
                    )
                    for i, c in enumerate(clients)
                ]
            )
            cur = await sink.conn.execute(
                "SELECT pg_stat_get_xact_tuples_updated('visitor_sessions'::regclass),"
                " pg_stat_get_xact_tuples_hot_updated('visitor_sessions'::regclass)"
            )
            assert await cur.fetchone() == (10, 9)  # the stop leaves the open sessions' index
        await sink.recompute(refresh_open=True)
        row = (await _hourly(sink.conn))[("hot", start.replace(minute=0).astimezone(UTC))]
        assert row[4:] == (1, 300.0, 300.0)  # only the stopped session has a dwell so far
    finally:
        await sink.conn.close()


async def test_dwell_and_timeouts_reach_sessions_through_the_hour_indexes(
    database_url: str,
) -> None:
    """The dwell recompute and the timed-out sweep (every batch) read one hour of one site's
    sessions, not the table, which holds the whole retention period."""
    now = DAY_START + timedelta(hours=3)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO visitor_sessions (site, session_id, client_id, started_at, last_seen)"
            " SELECT 'plan-' || (g %% 20), 's' || g, 'c' || g,"
            " %(t)s - g * interval '10 s', %(t)s - g * interval '10 s'"
            " FROM generate_series(1, 30000) g",
            {"t": now},
        )
        await conn.execute("ANALYZE visitor_sessions")
        timeout = timedelta(minutes=20)
        hours = {
            "site": ["plan-1", "plan-2"],
            "hour": [now - timedelta(hours=1)] * 2,
            "day": [now.date()] * 2,
            "bit": [1, 1],
        }
        statements = [
            (
                "visitor_sessions_open_hour",
                flows_sql.DIRTY_TIMED_OUT,
                {"old": now - timedelta(seconds=5), "new": now, "timeout": timeout},
            ),
            (
                "visitor_sessions_site_end_hour",
                flows_sql.RECOMPUTE_HOURLY,
                {**hours, "lateness": timedelta(days=2), "wm": now, "timeout": timeout},
            ),
        ]
        for index, statement, params in statements:
            cur = await conn.execute("EXPLAIN " + statement, params)
            plan = "\n".join(row[0] for row in await cur.fetchall())
            assert "Seq Scan on visitor_sessions" not in plan, plan
            assert index in plan, plan
