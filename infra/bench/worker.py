"""Throughput of ``tourpulse worker``: events/s from Kafka into PostgreSQL rollups.

Two modes. Backlog (default): pre-loads a namespaced topic, starts the worker on it and
times first-row to last-row, so Kafka producing and start-up are not counted (full-size
batches). Paced (``--rate N``): starts the worker first and produces at N events/s while
it runs, so batches are as small as in the live pipeline. ``--source sim`` takes events
from the Wi-Fi simulator (20 HCMC sites, thousands of concurrent sessions after a 3 h
warm-up, like ``tourpulse bench pipeline``) instead of the sparse synthetic sessions.
Also reports the workers' CPU seconds, since on a shared machine events per CPU-second is
the number that does not depend on what else is running (the load average is recorded).

    python -m infra.bench.worker --events 50000 --workers 2   # writes .bench/worker.json
    python -m infra.bench.worker --events 50000 --workers 2 --source sim --rate 5000
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg import sql

from core.kafka_client import KafkaClientSettings
from core.settings import get_settings
from schemas.codec import encode_event
from schemas.topics import KafkaTopic
from schemas.wifi import (
    WifiSessionData,
    WifiSessionInterimV1,
    WifiSessionStartV1,
    WifiSessionStopV1,
)
from stream.storage import migrate

_KINDS = (WifiSessionStartV1, WifiSessionInterimV1, WifiSessionInterimV1, WifiSessionStopV1)


def synthetic_events(n: int, sites: int, seed: int = 1) -> list[bytes | tuple[bytes, bytes]]:
    """(key, value) pairs: sessions of start, two interims and a stop, spread over an hour."""
    rng = random.Random(seed)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    out: list[bytes | tuple[bytes, bytes]] = []
    for i in range(n // len(_KINDS) + 1):
        site = f"site-{rng.randrange(sites)}"
        data = WifiSessionData(
            client_id=f"{rng.randrange(16**16):016x}", session_id=f"s{i}", ap=f"{site}-ap1"
        )
        t = t0 + timedelta(seconds=i * 3600 / (n / len(_KINDS)))
        for k, model in enumerate(_KINDS):
            ev = model(
                site=site,
                device="bench",
                source="bench",
                data=data,
                event_time=t + timedelta(seconds=60 * k),
            )
            out.append((ev.partition_key(), encode_event(ev)))
    return out[:n]


def simulator_events(n: int, ns: str) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs from the Wi-Fi simulator at its natural pace (3 h warm-up)."""
    from device_configs.loader import load_device_configs
    from edge.simulator.generator import SimConfig, WifiSessionGenerator
    from edge.simulator.identity import SimulatedClockPseudonymiser

    settings = get_settings()
    keys = Path(tempfile.mkdtemp(prefix="tp-bench-keys-"))
    sim = SimConfig(start=datetime.now(UTC), seed=42, site_prefix=ns, warmup=timedelta(hours=3))
    gen = WifiSessionGenerator(
        load_device_configs(settings.device_configs), sim, SimulatedClockPseudonymiser(keys)
    )
    out = []
    for ev in gen:
        out.append((ev.partition_key(), encode_event(ev)))
        if len(out) == n:
            break
    return out


async def _create_topics(kafka: KafkaClientSettings, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(**kafka.aiokafka())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 4, 1) for t in topics])
    finally:
        await admin.close()


async def _produce(
    kafka: KafkaClientSettings, topic: str, records: list[tuple[bytes, bytes]], rate: float | None
) -> None:
    """Produce all records, as fast as possible or paced at ``rate`` events/s."""
    producer = AIOKafkaProducer(**kafka.aiokafka(linger_ms=5, acks="all"))
    await producer.start()
    try:
        started, futures = time.monotonic(), []
        for i, (k, v) in enumerate(records):
            if rate and i % 50 == 0:
                await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            futures.append(await producer.send(topic, v, key=k))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--sites", type=int, default=20)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=2000)
    p.add_argument(
        "--source",
        choices=("synthetic", "sim"),
        default="synthetic",
        help="sparse synthetic sessions or the Wi-Fi simulator's HCMC traffic",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="produce at this many events/s while the worker runs (0: backlog)",
    )
    p.add_argument("--out", type=Path, default=Path(".bench/worker.json"))
    args = p.parse_args(argv)
    settings = get_settings()
    ns = "b" + uuid.uuid4().hex[:8]
    dbname = f"tp_{ns}"
    topics = [
        f"{ns}.{t}"
        for t in (KafkaTopic.WIFI_SESSION, KafkaTopic.OCCUPANCY_LIVE, KafkaTopic.DEAD_LETTER)
    ]
    with psycopg.connect(settings.database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    url = urlunsplit(urlsplit(settings.database_url)._replace(path="/" + dbname))
    try:
        migrate.apply(url)
        if args.source == "sim":
            records = simulator_events(args.events, ns)
        else:
            records = synthetic_events(args.events, args.sites)  # type: ignore[assignment]
        asyncio.run(_create_topics(settings.kafka_client_settings(), topics))
        produce = functools.partial(_produce, settings.kafka_client_settings(), topics[0], records)
        if not args.rate:
            print(f"producing {args.events} events to {topics[0]} ...", flush=True)
            asyncio.run(produce(None))
        result = _run_worker(args, ns, url, produce)
    finally:
        with psycopg.connect(settings.database_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


def _run_worker(
    args: argparse.Namespace, ns: str, url: str, produce: Callable[[float], Awaitable[None]]
) -> dict[str, object]:
    env = dict(os.environ, TP_TOPIC_NAMESPACE=ns, DATABASE_URL=url)
    load_before = os.getloadavg()[0]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "infra.cli",
            "worker",
            "--workers",
            str(args.workers),
            "--metrics-port",
            "0",
            "--batch-size",
            str(args.batch_size),
            "--no-migrate",
            "--rebalance-timeout",
            "6",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if args.rate:
        time.sleep(8)  # group join and partition assignment before the first event
        print(f"producing {args.events} events at {args.rate:.0f}/s ...", flush=True)
        producer = threading.Thread(target=asyncio.run, args=(produce(args.rate),), daemon=True)
        producer.start()
    first = done = None
    cpu_first = cpu_done = 0.0
    pg_first: dict[str, float] = {}
    pg_done: dict[str, float] = {}
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and proc.poll() is None:
                row = conn.execute("SELECT count(*) FROM wifi_session_events").fetchone()
                n = int(row[0]) if row else 0
                if n and first is None:
                    first, cpu_first = time.monotonic(), _tree_cpu_seconds(proc.pid)
                    pg_first = _postgres_cpu_seconds(conn)
                if n >= args.events:
                    done, cpu_done = time.monotonic(), _tree_cpu_seconds(proc.pid)
                    pg_done = _postgres_cpu_seconds(conn)
                    break
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    if first is None or done is None:
        raise SystemExit("error: the worker did not store every event within 600 s")
    seconds = done - first
    worker_cpu = cpu_done - cpu_first
    backends = sum(pg_done[k] - pg_first.get(k, 0.0) for k in pg_done if k.startswith("db:"))
    server = pg_done["server"] - pg_first["server"]
    return {
        "benchmark": "worker_wifi_occupancy",
        "events": args.events,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "source": args.source,
        "produce_rate": args.rate or "backlog",
        "seconds_first_to_last_row": round(seconds, 2),
        "events_per_second": round(args.events / seconds),
        "worker_cpu_seconds_first_to_last_row": round(cpu_done - cpu_first, 2),
        "events_per_worker_cpu_second": round(args.events / max(worker_cpu, 1e-9)),
        "worker_cpu_ms_per_event": round(1000 * worker_cpu / args.events, 4),
        "postgres_backend_cpu_ms_per_event": round(1000 * backends / args.events, 4),
        "postgres_server_cpu_ms_per_event": round(1000 * server / args.events, 4),
        "loadavg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
    }


def _postgres_cpu_seconds(conn: psycopg.Connection) -> dict[str, float]:
    """CPU seconds of the worker's PostgreSQL backends ("db:<pid>") and of the whole server.

    The backends serving the bench database (minus this polling connection) are the cost
    the worker causes directly; "server" adds the WAL writer, checkpointer and every other
    client of a shared cluster, so it is an upper bound on a busy machine. Needs the
    server on this host (psutil reads its processes).
    """
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()"
    ).fetchall()
    out: dict[str, float] = {"server": 0.0}
    backends = {int(r[0]) for r in rows}
    for p in psutil.process_iter(["name", "cpu_times"]):
        times = p.info["cpu_times"]
        if p.info["name"] != "postgres" or times is None:
            continue
        seconds = times.user + times.system
        out["server"] += seconds
        if p.pid in backends:
            out[f"db:{p.pid}"] = seconds
    return out


def _tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants, from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0.0))[1]
        todo += [child for child, (parent, _) in stats.items() if parent == current]
    return total


if __name__ == "__main__":
    sys.exit(main())
