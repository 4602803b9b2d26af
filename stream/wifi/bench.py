"""Throughput of ``tourpulse worker``: events/s from Kafka into PostgreSQL rollups.

Pre-loads a namespaced topic with synthetic session events, starts the worker on it and
times first-row to last-row, so Kafka producing and Faust start-up are not counted.
Also reports the workers' CPU seconds, since on a shared machine events per CPU-second is
the number that does not depend on what else is running (the load average is recorded).

    python -m stream.wifi.bench --events 50000 --workers 2   # writes .bench/worker.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg import sql

from infra.settings import get_settings
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
        data = WifiSessionData(client_id=f"{rng.randrange(16**16):016x}", session_id=f"s{i}",
                               ap=f"{site}-ap1")  # fmt: skip
        t = t0 + timedelta(seconds=i * 3600 / (n / len(_KINDS)))
        for k, model in enumerate(_KINDS):
            ev = model(site=site, device="bench", source="bench", data=data,
                       event_time=t + timedelta(seconds=60 * k))  # fmt: skip
            out.append((ev.partition_key(), encode_event(ev)))
    return out[:n]


async def _prepare_kafka(bootstrap: str, topics: list[str], records: list) -> None:  # type: ignore[type-arg]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 4, 1) for t in topics])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topics[0], v, key=k) for k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--sites", type=int, default=20)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=2000)
    p.add_argument("--out", type=Path, default=Path(".bench/worker.json"))
    args = p.parse_args(argv)
    settings = get_settings()
    ns = "b" + uuid.uuid4().hex[:8]
    dbname = f"tp_{ns}"
    topics = [f"{ns}.{t}" for t in (KafkaTopic.WIFI_SESSION, KafkaTopic.OCCUPANCY_LIVE,
                                    KafkaTopic.DEAD_LETTER)]  # fmt: skip
    with psycopg.connect(settings.database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    url = urlunsplit(urlsplit(settings.database_url)._replace(path="/" + dbname))
    try:
        migrate.apply(url)
        print(f"producing {args.events} events to {topics[0]} ...", flush=True)
        asyncio.run(_prepare_kafka(settings.kafka_bootstrap, topics,
                                   synthetic_events(args.events, args.sites)))  # fmt: skip
        result = _run_worker(args, ns, url)
    finally:
        with psycopg.connect(settings.database_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


def _run_worker(args: argparse.Namespace, ns: str, url: str) -> dict[str, object]:
    env = dict(os.environ, TP_TOPIC_NAMESPACE=ns, DATABASE_URL=url)
    load_before = os.getloadavg()[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "worker", "--workers", str(args.workers),
         "--metrics-port", "0", "--batch-size", str(args.batch_size), "--no-migrate",
         "--rebalance-timeout", "6"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    first = done = None
    cpu_first = cpu_done = 0.0
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and proc.poll() is None:
                row = conn.execute("SELECT count(*) FROM wifi_session_events").fetchone()
                n = int(row[0]) if row else 0
                if n and first is None:
                    first, cpu_first = time.monotonic(), _tree_cpu_seconds(proc.pid)
                if n >= args.events:
                    done, cpu_done = time.monotonic(), _tree_cpu_seconds(proc.pid)
                    break
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    if first is None or done is None:
        raise SystemExit("error: the worker did not store every event within 600 s")
    seconds = done - first
    return {
        "benchmark": "worker_wifi_occupancy",
        "events": args.events,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "seconds_first_to_last_row": round(seconds, 2),
        "events_per_second": round(args.events / seconds),
        "worker_cpu_seconds_first_to_last_row": round(cpu_done - cpu_first, 2),
        "events_per_worker_cpu_second": round(args.events / max(cpu_done - cpu_first, 1e-9)),
        "loadavg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
    }


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
