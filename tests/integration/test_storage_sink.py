"""The occupancy sink against real PostgreSQL: exact rollups under duplicates, reordering,
late events, replays and sessions whose stop never arrives."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from stream.storage import migrate
from stream.wifi.batch import RAW_COLUMNS, raw_row
from stream.wifi.sink import OccupancySink
from tests.support.wifi_helpers import T0, disorder, expected_rollups, generate, make_event

pytestmark = pytest.mark.integration
#: Run on TimescaleDB and on plain PostgreSQL (conftest.pytest_generate_tests).
BOTH_BACKENDS = True
TIMEOUT = timedelta(minutes=5)
HORIZON = timedelta(days=1)


async def _rollups(conn: psycopg.AsyncConnection) -> dict:
    cur = await conn.execute(
        "SELECT site, minute, connected, new_sessions, ended_sessions FROM occupancy_minute"
    )
    return {(s, m): (c, n, e) for s, m, c, n, e in await cur.fetchall()}


async def _sink(url: str, raw_writer: str = "unnest") -> OccupancySink:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True, options="-c timezone=UTC")
    return OccupancySink(conn, TIMEOUT, raw_writer=raw_writer)


async def _feed(sink: OccupancySink, events: list, batch: int) -> int:
    inserted = 0
    for i in range(0, len(events), batch):
        inserted += (await sink.write(events[i : i + batch])).inserted
    await sink.close_lagging_sites(HORIZON)
    return inserted


@pytest.mark.parametrize("raw_writer", ["unnest", "copy"])
async def test_disordered_duplicated_stream_gives_exact_rollups(
    database_url: str, raw_writer: str
) -> None:
    events = generate(3000, ["ben-thanh", "nha-tho", "dinh-doc-lap"], seed=11)
    messy = disorder(events, seed=5)
    sink = await _sink(database_url, raw_writer)
    try:
        assert await _feed(sink, messy, batch=257) == len(events)
        # A full replay (as after a crash that lost every offset) changes nothing.
        assert await _feed(sink, messy, batch=1000) == 0
        assert await _rollups(sink.conn) == expected_rollups(events, TIMEOUT)
    finally:
        await sink.conn.close()


@pytest.mark.parametrize("raw_writer", ["unnest", "copy"])
async def test_batch_partly_seen_before_applies_only_its_new_events(
    database_url: str, raw_writer: str
) -> None:
    """A batch overlapping one already stored (a replay from an older offset) stores and
    counts only the events it adds."""
    events = generate(400, ["ben-thanh", "nha-tho"], seed=3)
    sink = await _sink(database_url, raw_writer)
    try:
        assert (await sink.write(events[:250])).inserted == 250
        result = await sink.write(events[100:])
        assert (result.inserted, result.duplicates) == (150, 150)
        await sink.close_lagging_sites(HORIZON)
        assert await _rollups(sink.conn) == expected_rollups(events, TIMEOUT)
    finally:
        await sink.conn.close()


async def test_duplicate_in_one_batch_and_across_batches_counts_once(database_url: str) -> None:
    start = make_event("start", "cho-lon", "a", "ab" * 8, T0 + timedelta(seconds=5))
    stop = make_event("stop", "cho-lon", "a", "ab" * 8, T0 + timedelta(seconds=70))
    sink = await _sink(database_url)
    try:
        first = await sink.write([start, start, stop])
        again = await sink.write([stop, start])
        assert (first.inserted, first.duplicates) == (2, 1)
        assert (again.inserted, again.duplicates) == (0, 2)
        rows = await _rollups(sink.conn)
        assert rows == {
            ("cho-lon", T0): (1, 1, 0),
            ("cho-lon", T0 + timedelta(minutes=1)): (1, 0, 1),
        }
        assert first.live[0].connected == 0  # stopped at the site's watermark
    finally:
        await sink.conn.close()


async def test_live_counts_stay_fresh_while_rollups_wait_for_their_interval(
    database_url: str,
) -> None:
    """Minutes are recomputed at most every ``rollup_interval``; live counts have their own
    interval, so the IOC's number moves with the next batch while the minute stays queued
    (and stored as it was) until the rollup is due."""
    now = [0.0]
    conn = await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, options="-c timezone=UTC"
    )
    sink = OccupancySink(
        conn, TIMEOUT, rollup_interval=5.0, live_interval=1.0, clock=lambda: now[0]
    )
    t = T0 + timedelta(seconds=10)
    try:
        first = await sink.write([make_event("start", "cho-lon", "a", "ab" * 8, t)])
        assert first.minutes_recomputed == 1 and first.live[0].connected == 1
        now[0] = 1.0
        second = await sink.write([make_event("start", "cho-lon", "b", "cd" * 8, t)])
        assert second.minutes_recomputed == 0
        assert [u.connected for u in second.live] == [2]
        assert await _rollups(conn) == {("cho-lon", T0): (1, 1, 0)}  # not yet recomputed
        now[0] = 1.5
        assert await sink.flush_due() == (0, [])  # neither is due, nor has anything new
        now[0] = 5.0
        minutes, live = await sink.flush_due()
        assert (minutes, live) == (1, [])  # live counts were read after the last batch
        assert await _rollups(conn) == {("cho-lon", T0): (2, 2, 0)}
    finally:
        await conn.close()


async def test_session_without_stop_times_out_and_late_stop_corrects(database_url: str) -> None:
    c = "cd" * 8
    sink = await _sink(database_url)
    try:
        res = await sink.write([make_event("start", "bui-vien", "x", c, T0)])
        assert res.live[0].connected == 1
        # Another client keeps the site's watermark moving for 10 minutes.
        other = [
            make_event("interim", "bui-vien", "y", "ef" * 8, T0 + timedelta(minutes=k))
            for k in range(11)
        ]
        await sink.write(other)
        rows = await _rollups(sink.conn)
        assert [rows[("bui-vien", T0 + timedelta(minutes=k))][0] for k in range(7)] == (
            [2, 2, 2, 2, 2, 1, 1]  # x timed out at T0 + 5 min
        )
        assert rows[("bui-vien", T0 + timedelta(minutes=5))][2] == 1
        # Its stop arrives late: the session really ended at T0 + 2 min 30 s.
        await sink.write([make_event("stop", "bui-vien", "x", c, T0 + timedelta(seconds=150))])
        rows = await _rollups(sink.conn)
        assert [rows[("bui-vien", T0 + timedelta(minutes=k))][0] for k in range(7)] == (
            [2, 2, 2, 1, 1, 1, 1]
        )
        assert rows[("bui-vien", T0 + timedelta(minutes=2))][2] == 1
        assert rows[("bui-vien", T0 + timedelta(minutes=5))][2] == 0
    finally:
        await sink.conn.close()


async def test_quiet_site_minutes_are_closed_by_the_timer(database_url: str) -> None:
    sink = await _sink(database_url)
    try:
        await sink.write([make_event("start", "quiet", "q", "01" * 8, T0)])
        await sink.write([make_event("start", "busy", "b", "02" * 8, T0 + timedelta(minutes=8))])
        assert max(m for s, m in await _rollups(sink.conn) if s == "quiet") == T0
        assert await sink.close_lagging_sites(HORIZON) == 8
        rows = await _rollups(sink.conn)
        quiet = [rows[("quiet", T0 + timedelta(minutes=k))] for k in range(9)]
        assert quiet[4] == (1, 0, 0) and quiet[5] == (0, 0, 1) and quiet[8] == (0, 0, 0)
    finally:
        await sink.conn.close()


@pytest.mark.parametrize("rollup_interval", [0.0, 1e9], ids=["each-batch", "all-at-once"])
async def test_minutes_count_the_same_recomputed_one_batch_at_a_time_or_all_at_once(
    database_url: str, rollup_interval: float
) -> None:
    """A live site's recompute covers a minute or two (counted minute by minute); a
    worker catching up covers tens (a sweep over the minutes, one range per client). Both
    must give the definitions' counts: here a client whose sessions touch at a minute's
    edge, overlap, or repeat across an hour, a session of no length, and the simulator's
    mix of clients with one session and clients with several."""
    a, b = "0a" * 8, "0b" * 8
    edges = [
        make_event("start", "tan-dinh", "a1", a, T0 + timedelta(seconds=10)),
        make_event("stop", "tan-dinh", "a1", a, T0 + timedelta(minutes=2)),  # on the edge
        make_event("start", "tan-dinh", "a2", a, T0 + timedelta(minutes=2)),
        make_event("start", "tan-dinh", "a3", a, T0 + timedelta(minutes=3)),  # overlaps a2
        make_event("stop", "tan-dinh", "a2", a, T0 + timedelta(minutes=3, seconds=30)),
        make_event("stop", "tan-dinh", "a3", a, T0 + timedelta(minutes=5)),
        make_event("start", "tan-dinh", "b1", b, T0 + timedelta(minutes=4)),
        make_event("stop", "tan-dinh", "b1", b, T0 + timedelta(minutes=4)),  # no length
        make_event("start", "tan-dinh", "a4", a, T0 + timedelta(minutes=40)),
    ]
    events = sorted(edges + generate(2000, ["tan-dinh", "cho-lon"], seed=23),
                    key=lambda e: e.event_time)  # fmt: skip
    conn = await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, options="-c timezone=UTC"
    )
    sink = OccupancySink(conn, TIMEOUT, rollup_interval=rollup_interval)
    try:
        for i in range(0, len(events), 40):
            await sink.write(events[i : i + 40])
        await sink.close_lagging_sites(HORIZON)  # cho-lon's minutes up to a4's
        await sink.flush()
        rows = await _rollups(conn)
        assert rows == expected_rollups(events, TIMEOUT)
        assert rows[("tan-dinh", T0 + timedelta(minutes=4))][1:] >= (1, 1)  # b1 began, ended
    finally:
        await conn.close()


def test_migrations_apply_once(database_url: str, db_backend: str) -> None:
    assert migrate.apply(database_url, backend=db_backend) == []
    with psycopg.connect(database_url) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
        assert migrate.backend_of(conn) == db_backend
        if db_backend == "plain":
            parts = conn.execute(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = 'wifi_session_events'::regclass"
            ).fetchone()
            assert parts is not None and parts[0] >= 9  # default + yesterday .. today + 7
        else:
            hyper = conn.execute(
                "SELECT hypertable_name, compression_enabled"
                " FROM timescaledb_information.hypertables ORDER BY 1"
            ).fetchall()
            assert ("wifi_session_events", True) in hyper
            assert ("occupancy_minute", True) in hyper
            jobs = conn.execute(
                "SELECT proc_name, hypertable_name, config->>'drop_after'"
                " FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL"
            ).fetchall()
            retention = {t: d for p, t, d in jobs if p == "policy_retention"}
            assert retention["wifi_session_events"] == "30 days"  # as the README says
            assert retention["occupancy_minute"] == "90 days"
            assert any(p == "policy_refresh_continuous_aggregate" for p, _, _ in jobs)
    assert names[0] == "0000_storage_backend.sql"


async def test_queued_minutes_survive_a_lost_worker_and_are_swept_exactly(
    database_url: str,
) -> None:
    """With a rollup interval, batches only queue minutes (occupancy_dirty, committed with
    the sessions). A sink that vanishes before flushing (kill -9) leaves them queued; another
    sink's sweep recomputes them, and the result equals the from-scratch expectation."""
    events = generate(2000, ["ben-thanh", "nha-tho"], seed=3)
    conn = await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, options="-c timezone=UTC"
    )
    lost = OccupancySink(conn, TIMEOUT, rollup_interval=3600.0)
    try:
        await lost.write(events[:10])  # the first batch flushes (nothing flushed yet)
        for i in range(10, len(events), 300):
            assert (await lost.write(events[i : i + 300])).minutes_recomputed == 0
        cur = await conn.execute("SELECT count(*) FROM occupancy_dirty")
        row = await cur.fetchone()
        assert row is not None and row[0] > 0
    finally:
        await conn.close()
    sweeper = await _sink(database_url)
    try:
        assert await sweeper.close_lagging_sites(HORIZON) > 0
        assert await _rollups(sweeper.conn) == expected_rollups(events, TIMEOUT)
        cur = await sweeper.conn.execute("SELECT count(*) FROM occupancy_dirty")
        assert await cur.fetchone() == (0,)
    finally:
        await sweeper.conn.close()


async def test_interims_update_their_session_in_place(database_url: str) -> None:
    """An interim moves its session's ends_at a few minutes on. While ends_at itself was
    indexed, no merge could be a heap-only (HOT) update: each wrote a new row version
    elsewhere plus an entry in both indexes. The index holds ends_at in 30-minute bins
    (migration 1000), so an interim within the bin updates the row in place."""
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, options="-c timezone=UTC"
    ) as conn:
        sink = OccupancySink(conn, TIMEOUT)
        clients = [f"{i:02x}" * 8 for i in range(10)]
        start = T0 + timedelta(minutes=1)
        await sink.write(
            [make_event("start", "hot", f"s{i}", c, start) for i, c in enumerate(clients)]
        )
        interim = start + timedelta(minutes=5)  # ends_at T0+6 -> T0+11 min: the same bin
        async with conn.transaction():
            result = await sink.write(
                [make_event("interim", "hot", f"s{i}", c, interim) for i, c in enumerate(clients)]
            )
            cur = await conn.execute(
                "SELECT pg_stat_get_xact_tuples_updated('wifi_sessions'::regclass),"
                " pg_stat_get_xact_tuples_hot_updated('wifi_sessions'::regclass)"
            )
            assert await cur.fetchone() == (10, 10)
        assert [u.connected for u in result.live] == [10]
        rows = await _rollups(conn)
        assert rows[("hot", start)] == (10, 10, 0)
        assert rows[("hot", interim)] == (10, 0, 0)  # the watermark's minute


def _with_data(event: object, **data: object) -> object:
    """A copy of ``event`` with some Wi-Fi fields set (ssid, counters...)."""
    return event.model_copy(update={"data": event.data.model_copy(update=data)})  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "awkward",
    [
        None,  # every value packs: the usual batch
        "a\x1fb",  # the packing separator inside an SSID
        "\x1e",  # an SSID equal to the packing's NULL marker
    ],
)
async def test_raw_rows_are_stored_exactly_as_the_events_say(
    database_url: str, awkward: str | None
) -> None:
    """Packed or not, every stored value is the event's: text in any script, empty strings,
    NULLs, booleans and byte counters beyond 32 bits."""
    t = T0 + timedelta(seconds=3)
    events = [
        _with_data(make_event("start", "ben-thanh", "s1", "ab" * 8, t), ssid="Wi-Fi Miễn phí 무료"),
        _with_data(
            make_event("interim", "ben-thanh", "s1", "ab" * 8, t + timedelta(seconds=60)),
            ssid="",
            randomized_mac=True,
            signal_dbm=-71,
            rx_bytes=5_000_000_000,
            tx_bytes=0,
            session_seconds=60,
        ),
        _with_data(
            make_event("stop", "ben-thanh", "s1", "ab" * 8, t + timedelta(seconds=90)),
            ssid=awkward,
            terminate_cause="User-Request",
        ),
    ]
    sink = await _sink(database_url)
    try:
        assert (await sink.write(events)).inserted == 3
        # A batch of one empty string: packed, it would read back as no element at all.
        lone = _with_data(make_event("start", "ben-thanh", "s2", "cd" * 8, t), ssid="")
        assert (await sink.write([lone])).inserted == 1
        # A session id holding the separator: its batch's sessions go as binary arrays.
        odd = make_event("start", "ben-thanh", awkward or "x\x1fy", "ef" * 8, t)
        assert (await sink.write([odd])).inserted == 1
        columns = ", ".join(RAW_COLUMNS)
        cur = await sink.conn.execute(
            f"SELECT {columns} FROM wifi_session_events ORDER BY event_time, event_id"
        )
        stored = await cur.fetchall()
        everything = [*events, lone, odd]
        expected = sorted((raw_row(e) for e in everything), key=lambda r: (r[1], r[0]))  # type: ignore[arg-type]
        assert stored == expected
        cur = await sink.conn.execute("SELECT session_id, client_id, ap FROM wifi_sessions")
        sessions = {(e.data.session_id, e.data.client_id, e.data.ap) for e in everything}  # type: ignore[attr-defined]
        assert set(await cur.fetchall()) == sessions
    finally:
        await sink.conn.close()
