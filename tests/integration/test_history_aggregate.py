"""History from the hourly series, on TimescaleDB (continuous aggregate) and plain
PostgreSQL (view): the same numbers as the minute rollups, and a late event reaches both
the aggregate and the history endpoint."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from api.app import create_app
from core.settings import Settings
from stream.wifi.sink import OccupancySink
from tests.support.api_support import asgi_client
from tests.support.wifi_helpers import make_event

pytestmark = pytest.mark.integration
#: Run on TimescaleDB and on plain PostgreSQL (conftest.pytest_generate_tests).
BOTH_BACKENDS = True
SITE = "ben-thanh-market"


async def _history(client: Any, start: Any, end: Any, step: str) -> list[dict[str, Any]]:
    resp = await client.get(
        f"/api/v1/sites/{SITE}/occupancy",
        params={"from": start.isoformat(), "to": end.isoformat(), "step": step},
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["buckets"]  # type: ignore[no-any-return]


def _refresh_aggregate(url: str) -> None:
    """Run the continuous aggregate's refresh policy now (it runs every minute anyway)."""
    with psycopg.connect(url, autocommit=True) as conn:
        ext = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        if ext.fetchone() is None:
            return  # plain PostgreSQL: a view, always current
        jobs = conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs"
            " WHERE proc_name = 'policy_refresh_continuous_aggregate'"
        ).fetchall()
        for (job,) in jobs:
            conn.execute("CALL run_job(%s)", (job,))


def _materialised_through(url: str) -> Any:
    """The continuous aggregate's watermark: hours before it come from its own table,
    so a change there can only have come through the refresh policy."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark("
            "  (SELECT mat_hypertable_id FROM _timescaledb_catalog.continuous_agg"
            "   WHERE user_view_name = 'occupancy_hourly')))"
        ).fetchone()
    assert row is not None
    return row[0]


def _hourly_row(url: str, hour: Any) -> tuple[int, int] | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT connected_max, connected_sum FROM occupancy_hourly"
            " WHERE site = %s AND hour = %s",
            (SITE, hour),
        ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


async def test_hourly_history_equals_minutes_and_follows_a_late_event(
    settings: Settings, database_url: str, db_backend: str
) -> None:
    # Recent hours: the refresh policy materialises the last 7 days (older hours are
    # final by then; lateness is 2 h).
    T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=8)
    rng = random.Random(3)
    events = []
    for n in range(60):  # sessions over ~6 hours, a few never stopped
        start = T0 + timedelta(minutes=rng.randrange(0, 330))
        client = f"{n:032x}"
        events.append(make_event("start", SITE, f"s{n}", client, start))
        if n % 7:
            stop = start + timedelta(minutes=rng.randrange(3, 90))
            events.append(make_event("stop", SITE, f"s{n}", client, stop))
    conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    sink = OccupancySink(conn, timedelta(minutes=15))
    late_client = "f" * 32
    try:
        await sink.write([*events, make_event("start", SITE, "late", late_client, T0)])
        await sink.close_lagging_sites(timedelta(days=1))
        _refresh_aggregate(database_url)
        begin, end = T0 + timedelta(minutes=7), T0 + timedelta(hours=6, minutes=13)
        app = create_app(settings)
        async with asgi_client(app) as client:
            hourly = await _history(client, begin, end, "1h")
            minutes = await _history(client, begin, end, "1m")
            # The same values whether buckets come from the aggregate or from minutes.
            for bucket in hourly:
                hour = _start(bucket)
                inside = [m for m in minutes if hour <= _start(m) < hour + timedelta(hours=1)]
                with_data = [m for m in inside if m["minutes"]]
                assert bucket["minutes"] == len(with_data)
                if with_data:
                    assert bucket["connected_max"] == max(m["connected_max"] for m in with_data)
                    mean = sum(m["connected_avg"] for m in with_data) / len(with_data)
                    assert bucket["connected_avg"] == pytest.approx(mean)
                    assert bucket["new_sessions"] == sum(m["new_sessions"] for m in with_data)
            first_hour = T0
            before = _hourly_row(database_url, first_hour)
            before_api = next(b for b in hourly if _start(b) == T0)
            # The late stop of a session that began at T0: it ended at T0 + 2 min, not at
            # its 15-minute timeout.
            late_stop = make_event("stop", SITE, "late", late_client, T0 + timedelta(minutes=2))
            await sink.write([late_stop])
            _refresh_aggregate(database_url)
            if db_backend == "timescaledb":  # the hour is read from the materialisation
                assert _materialised_through(database_url) > first_hour + timedelta(hours=1)
            after = _hourly_row(database_url, first_hour)
            assert before is not None and after is not None
            assert after[1] < before[1]  # one client fewer in minutes 2-14 of that hour
            after_api = next(b for b in await _history(client, begin, end, "1h") if _start(b) == T0)
            assert after_api["connected_avg"] < before_api["connected_avg"]
    finally:
        await conn.close()


def _start(bucket: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(bucket["start"].replace("Z", "+00:00"))
