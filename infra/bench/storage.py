"""``tourpulse bench storage``: TimescaleDB storage on 30 days of HCMC history.

Fresh databases on the stack's server: one migrated for TimescaleDB holding the history,
and a TimescaleDB / plain PostgreSQL pair for the ingest comparison. Thirty days of
history for the 20 sites are generated server-side in one set-based INSERT each (the
minute rollups with a diurnal curve, and raw session events shaped like the simulator's:
uuid ids, 32-hex pseudonymous clients, access points, interleaved in time as a stream
arrives), then the continuous aggregate is refreshed the way its policy leaves it (up
to an hour ago; newer hours are computed on read), so the bench takes minutes, not a
month of simulation. Measured:

* history through the API's own ``fetch_history_json`` and a pool configured like the API's
  (a connection check on every checkout): 30 days hourly and 1 day per minute up to
  now, p50/p95 over many sites and runs;
* bytes per raw event before and after compressing every chunk (segmentby site);
* ingest through the occupancy worker's sink (infra/bench/storage_ingest.py), as a
  TimescaleDB / plain ratio measured in one run;
* the machine's conditions (CPUs, load average before and after): this machine is shared
  and its load moves every figure.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from api.history import bucket_origin, fetch_history_json
from device_configs import load_device_configs
from infra.bench.context import BenchContext, BenchError
from infra.bench.storage_ingest import ingest_ratio, local_backend_pid, server_cpu_s
from stream.storage import migrate

DAYS = 30
#: Raw events per site and day in the generated history (~ the simulator's busy days).
RAW_PER_SITE_DAY = 4000
QUERY_RUNS = 100

_MINUTES = """
INSERT INTO occupancy_minute (site, minute, connected, new_sessions, ended_sessions)
SELECT s, m,
       greatest(0, round(200 * (1 + sin(extract(epoch FROM m) / 86400 * 2 * pi()))
                     * (0.5 + random())))::int,
       (random() * 20)::int, (random() * 20)::int
FROM generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 minute',
                     interval '1 minute') m,
     unnest(%(sites)s::text[]) s
"""
#: Time-major (every site's events interleaved in time, as the stream delivers them).
_RAW = """
INSERT INTO wifi_session_events (event_id, event_time, ingest_time, site, device, type,
    client_id, session_id, ap, ssid, randomized_mac, signal_dbm, rx_bytes, tx_bytes,
    session_seconds)
SELECT gen_random_uuid()::text, t, t + interval '80 milliseconds', s, s || '-edge',
       (ARRAY['wifi.session.start', 'wifi.session.interim', 'wifi.session.stop'])[1 + g %% 3],
       md5((g / 5)::text || s), md5((g / 5)::text || s || 'session'),
       s || '-ap0' || (g %% 6), 'HCMC Free WiFi', g %% 5 < 2, -40 - (g %% 50),
       (g * 7919) %% 50000000, (g * 104729) %% 5000000, (g * 13) %% 7200
FROM generate_series(0::bigint, %(per_site)s - 1) g,
     LATERAL (SELECT %(start)s::timestamptz
                     + (g::float8 / %(per_site)s) * (%(end)s::timestamptz - %(start)s)) AS x(t),
     unnest(%(sites)s::text[]) s
"""
#: Where the refresh policy leaves the aggregate (end_offset 1 hour, migration 0700).
_REFRESH = "CALL refresh_continuous_aggregate('occupancy_hourly', NULL, %s)"


def run(ctx: BenchContext) -> dict[str, Any]:
    return asyncio.run(_run(ctx))


async def _run(ctx: BenchContext) -> dict[str, Any]:
    server = ctx.settings.database_url
    with psycopg.connect(server) as conn:
        if not migrate.timescale_ready(conn):
            raise BenchError("TimescaleDB is not installed and preloaded (make deps, stack up)")
    configs = load_device_configs(ctx.settings.device_configs)
    sites = [s.id for s in configs.sites]
    days = 2 if ctx.quick else DAYS
    machine: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg_1m_start": _load()}
    tag = uuid.uuid4().hex[:6]
    names = {
        "history": ("timescaledb", f"tp_bench_hist_{tag}"),
        "timescaledb": ("timescaledb", f"tp_bench_ingts_{tag}"),
        "plain": ("plain", f"tp_bench_ingpl_{tag}"),
    }
    try:
        urls = {key: _create(server, name, backend) for key, (backend, name) in names.items()}
        machine["server"] = _versions(urls["history"])
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        started = time.perf_counter()
        rows = _generate(urls["history"], sites, now - timedelta(days=days), now)
        generate_s = time.perf_counter() - started
        queries = await _queries(urls["history"], sites, now, ctx)
        sizes = _compression(urls["history"])
        ingest = await ingest_ratio(
            {b: urls[b] for b in ("timescaledb", "plain")}, configs, ctx.quick
        )
    finally:
        for _, name in names.values():
            _drop(server, name)
    machine["load_avg_1m_end"] = _load()
    return {
        "backend": "timescaledb",
        "days": days,
        "sites": len(sites),
        "rows": rows,
        "generate_s": round(generate_s, 1),
        **queries,
        **sizes,
        **ingest,
        "machine": machine,
    }


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _versions(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version'),"
            " (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb')"
        ).fetchone()
    return f"PostgreSQL {row[0]}, TimescaleDB {row[1]}" if row else "unknown"


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


def _generate(url: str, sites: list[str], start: datetime, end: datetime) -> dict[str, int]:
    """Minute rollups for every minute of ``[start, end)`` and raw events across it."""
    days = round((end - start) / timedelta(days=1))
    print(f"[bench] storage: generating {days} days for {len(sites)} sites ...", flush=True)
    params = {"sites": sites, "start": start, "end": end, "per_site": RAW_PER_SITE_DAY * days}
    with psycopg.connect(url, autocommit=True) as conn:
        minutes = conn.execute(_MINUTES, params).rowcount
        raw = conn.execute(_RAW, params).rowcount
        conn.execute(_REFRESH, (end - timedelta(hours=1),))
        conn.execute("ANALYZE occupancy_minute")  # autovacuum would, given time
        row = conn.execute(
            "SELECT format('%I.%I', materialization_hypertable_schema,"
            " materialization_hypertable_name) FROM timescaledb_information.continuous_aggregates"
            " WHERE view_name = 'occupancy_hourly'"
        ).fetchone()
        if row:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.SQL(row[0])))
        hourly = _count(conn, "occupancy_hourly")
    return {"occupancy_minute": minutes, "wifi_session_events": raw, "occupancy_hourly": hourly}


async def _queries(url: str, sites: list[str], now: datetime, ctx: BenchContext) -> dict[str, Any]:
    """The IOC's two history views, up to now, through ``fetch_history_json`` on a pool set up
    like the API's (api/app.py: a connection check on every checkout)."""
    runs = 10 if ctx.quick else QUERY_RUNS
    # One connection (requests here are sequential), so its server process is known and
    # the CPU a request costs (client + server, little moved by other jobs) is measured
    # beside the wall-clock time that this shared machine's load inflates.
    pool = AsyncConnectionPool(
        url, min_size=1, max_size=1, check=AsyncConnectionPool.check_connection, open=False
    )
    async with pool:
        await pool.open(wait=True)
        async with pool.connection() as conn:
            pid = local_backend_pid(conn)
        out: dict[str, Any] = {}
        for key, span, step in (
            ("history_30d_hourly_ms", timedelta(days=30), timedelta(hours=1)),
            ("history_1d_minute_ms", timedelta(days=1), timedelta(minutes=1)),
        ):
            times, cpu = [], []
            for i in range(runs):
                site = sites[i % len(sites)]
                server0, client0 = server_cpu_s(pid), time.process_time()
                t = time.perf_counter()
                text = await fetch_history_json(
                    pool, site, now - span, now, step, bucket_origin("Asia/Ho_Chi_Minh")
                )
                times.append((time.perf_counter() - t) * 1000)
                server1 = server_cpu_s(pid)
                if server0 is not None and server1 is not None:
                    cpu.append((server1 - server0 + time.process_time() - client0) * 1000)
                buckets = json.loads(text)
                if not any(b["minutes"] for b in buckets):
                    raise BenchError(f"{key}: no data returned for {site}")
            times.sort()
            out[key] = {
                "p50": round(statistics.median(times), 2),
                "p95": round(times[int(0.95 * (len(times) - 1))], 2),
                "buckets": len(buckets),
                "runs": runs,
            }
            if cpu:
                out[key]["cpu_ms_mean"] = round(statistics.fmean(cpu), 2)
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
