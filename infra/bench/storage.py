"""``tourpulse bench storage``: TimescaleDB storage on 30 days of HCMC history.

Two fresh databases on the stack's server, migrated for TimescaleDB and for plain
PostgreSQL. Thirty days of history for the 20 sites are generated server-side (the
minute rollups with a diurnal curve, and raw session events shaped like the simulator's:
uuid ids, 32-hex pseudonymous clients, access points) so the bench takes seconds, not an
hour of simulation. Measured:

* history queries through the API's own ``fetch_history``: 30 days hourly and 1 day per
  minute, p50/p95 over many sites and runs;
* bytes per raw event before and after compressing every chunk (segmentby site);
* ingest through the occupancy worker's sink (the same simulator events into both
  databases, alternating runs), as a TimescaleDB / plain ratio measured in one run.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from api.history import bucket_origin, fetch_history
from device_configs import load_device_configs
from edge.simulator.generator import SimConfig, WifiSessionGenerator
from edge.simulator.identity import SimulatedClockPseudonymiser
from infra.bench.context import BenchContext, BenchError
from stream.storage import migrate
from stream.wifi.sink import OccupancySink

DAYS = 30
#: Raw events per site and day in the generated history (~ the simulator's busy days).
RAW_PER_SITE_DAY = 4000
QUERY_RUNS = 100
INGEST_EVENTS = 40_000
INGEST_BATCH = 2000

_MINUTES = """
INSERT INTO occupancy_minute (site, minute, connected, new_sessions, ended_sessions)
SELECT s, m,
       greatest(0, round(200 * (1 + sin(extract(epoch FROM m) / 86400 * 2 * pi()))
                     * (0.5 + random())))::int,
       (random() * 20)::int, (random() * 20)::int
FROM unnest(%(sites)s::text[]) s,
     generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 minute',
                     interval '1 minute') m
"""
_RAW = """
INSERT INTO wifi_session_events (event_id, event_time, ingest_time, site, device, type,
    client_id, session_id, ap, ssid, randomized_mac, signal_dbm, rx_bytes, tx_bytes,
    session_seconds)
SELECT gen_random_uuid()::text, t, t + interval '80 milliseconds', s, s || '-edge',
       (ARRAY['wifi.session.start', 'wifi.session.interim', 'wifi.session.stop'])[1 + g %% 3],
       md5((g / 5)::text || s), md5((g / 5)::text || s || 'session'),
       s || '-ap0' || (g %% 6), 'HCMC Free WiFi', g %% 5 < 2, -40 - (g %% 50),
       (g * 7919) %% 50000000, (g * 104729) %% 5000000, (g * 13) %% 7200
FROM unnest(%(sites)s::text[]) s,
     generate_series(1::bigint, %(per_site)s) g,
     LATERAL (SELECT %(start)s::timestamptz
                     + (g::float8 / %(per_site)s) * (%(end)s::timestamptz - %(start)s)) AS x(t)
"""


def run(ctx: BenchContext) -> dict[str, Any]:
    return asyncio.run(_run(ctx))


async def _run(ctx: BenchContext) -> dict[str, Any]:
    server = ctx.settings.database_url
    with psycopg.connect(server) as conn:
        if not migrate.timescale_ready(conn):
            raise BenchError("TimescaleDB is not installed and preloaded (make deps, stack up)")
    sites = [s.id for s in load_device_configs(ctx.settings.device_configs).sites]
    days = 2 if ctx.quick else DAYS
    names = {b: f"tp_bench_{b[:5]}_{uuid.uuid4().hex[:6]}" for b in ("timescaledb", "plain")}
    urls = {b: _create(server, name, b) for b, name in names.items()}
    try:
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        start = end - timedelta(days=days)
        rows = _generate(urls["timescaledb"], sites, start, end, days, ctx)
        queries = await _queries(urls["timescaledb"], sites, end, ctx)
        sizes = _compression(urls["timescaledb"])
        ingest = await _ingest_ratio(urls, ctx)
    finally:
        for name in names.values():
            _drop(server, name)
    return {
        "backend": "timescaledb",
        "days": days,
        "sites": len(sites),
        "rows": rows,
        **queries,
        **sizes,
        **ingest,
    }


def _create(server: str, name: str, backend: str) -> str:
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(server, dbname=name)
    migrate.apply(url, backend=backend)
    return url


def _drop(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _generate(
    url: str, sites: list[str], start: datetime, end: datetime, days: int, ctx: BenchContext
) -> dict[str, int]:
    print(f"[bench] storage: generating {days} days for {len(sites)} sites ...", flush=True)
    params = {"sites": sites, "start": start, "end": end, "per_site": RAW_PER_SITE_DAY * days}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_MINUTES, params)
        conn.execute(_RAW, params)
        conn.execute("CALL refresh_continuous_aggregate('occupancy_hourly', NULL, NULL)")
        conn.execute("ANALYZE")
        counts = {
            t: _count(conn, t)
            for t in ("occupancy_minute", "wifi_session_events", "occupancy_hourly")
        }
    return counts


async def _queries(url: str, sites: list[str], end: datetime, ctx: BenchContext) -> dict[str, Any]:
    runs = 10 if ctx.quick else QUERY_RUNS
    async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
        await pool.open()
        out: dict[str, Any] = {}
        for key, span, step in (
            ("history_30d_hourly_ms", timedelta(days=30), timedelta(hours=1)),
            ("history_1d_minute_ms", timedelta(days=1), timedelta(minutes=1)),
        ):
            times = []
            for i in range(runs):
                site = sites[i % len(sites)]
                t = time.perf_counter()
                buckets = await fetch_history(
                    pool, site, end - span, end, step, bucket_origin("Asia/Ho_Chi_Minh")
                )
                times.append((time.perf_counter() - t) * 1000)
                if not any(b.minutes for b in buckets):
                    raise BenchError(f"{key}: no data returned for {site}")
            times.sort()
            out[key] = {
                "p50": round(statistics.median(times), 2),
                "p95": round(times[int(0.95 * (len(times) - 1))], 2),
                "buckets": len(buckets),
            }
    return out


def _compression(url: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        n = _count(conn, "wifi_session_events")
        before = _raw_bytes(conn)
        conn.execute(
            "SELECT compress_chunk(c, if_not_compressed => true)"
            " FROM show_chunks('wifi_session_events') c"
        )
        after = _raw_bytes(conn)
    return {
        "bytes_per_raw_event_uncompressed": round(before / n, 1),
        "bytes_per_raw_event_compressed": round(after / n, 1),
        "compression_ratio": round(before / after, 1),
    }


def _count(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


def _raw_bytes(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT hypertable_size('wifi_session_events')").fetchone()
    return int(row[0]) if row and row[0] else 0


async def _ingest_ratio(urls: dict[str, str], ctx: BenchContext) -> dict[str, Any]:
    """The worker's sink writing the same simulator events into each backend, alternating
    (ts, plain, ts, plain, ...) so machine noise hits both alike; median events/s each."""
    configs = load_device_configs(ctx.settings.device_configs)
    n = 4000 if ctx.quick else INGEST_EVENTS
    with tempfile.TemporaryDirectory() as tmp:
        sim = SimConfig(start=datetime(2026, 3, 7, 2, tzinfo=UTC), seed=5, scale=3.0)
        gen = WifiSessionGenerator(configs, sim, SimulatedClockPseudonymiser(Path(tmp)))
        events = [e for _, e in zip(range(n), gen, strict=False)]
    rates: dict[str, list[float]] = {"timescaledb": [], "plain": []}
    for round_ in range(3):
        for backend in ("timescaledb", "plain"):
            rates[backend].append(await _ingest(urls[backend], events, round_))
    ts, plain = statistics.median(rates["timescaledb"]), statistics.median(rates["plain"])
    return {
        "ingest_events_per_s_timescale": round(ts),
        "ingest_events_per_s_plain": round(plain),
        "ingest_events_per_s_timescale_vs_plain": round(ts / plain, 3),
    }


async def _ingest(url: str, events: list[Any], round_: int) -> float:
    """Events/s of one pass; each round shifts time so every pass writes new rows."""
    shifted = [e.model_copy(update={"event_time": e.event_time + timedelta(days=round_ + 1),
                                    "id": f"{e.id}-{round_}"}) for e in events]  # fmt: skip
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        sink = OccupancySink(conn, timedelta(minutes=15), rollup_interval=1.0)
        t = time.perf_counter()
        for i in range(0, len(shifted), INGEST_BATCH):
            await sink.write(shifted[i : i + INGEST_BATCH])
        await sink.flush()
        return len(shifted) / (time.perf_counter() - t)
    finally:
        await conn.close()
