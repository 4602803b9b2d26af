"""Run ``tourpulse worker`` as a subprocess and feed it events through real Kafka."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg
from aiokafka import AIOKafkaProducer

from core.settings import Settings
from schemas.batch import join_batch
from schemas.codec import encode_event
from schemas.envelope import EventBase
from schemas.stream_out import OccupancyUpdateV1
from schemas.topics import KafkaTopic
from tests.support.kafka_helpers import Record
from tests.support.net import until

#: Short group timeouts so a restarted worker takes over a kill -9'd one's partitions
#: within seconds instead of the production defaults' half a minute.
FAST_GROUP = [
    "--rebalance-timeout",
    "6",
    "--group-session-timeout",
    "6",
    "--heartbeat-interval",
    "1",
    "--close-interval",
    "1",
]


def worker_topics(settings: Settings) -> list[str]:
    return [
        settings.kafka_topic(t)
        for t in (KafkaTopic.WIFI_SESSION, KafkaTopic.OCCUPANCY_LIVE, KafkaTopic.DEAD_LETTER)
    ]


def start_worker(
    settings: Settings,
    log_path: Path,
    *extra: str,
    session_timeout: float = 300,
    verbose: bool = False,
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        TP_TOPIC_NAMESPACE=str(settings.topic_namespace),
        TP_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        DATABASE_URL=settings.database_url,
        TP_DATA_DIR=str(settings.data_dir),
    )
    argv = [
        sys.executable,
        "-m",
        "infra.cli",
        *(["-v"] if verbose else []),
        "worker",
        "--metrics-port",
        "0",
        "--session-timeout",
        str(session_timeout),
        *FAST_GROUP,
        *extra,
    ]
    with log_path.open("ab") as log:
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_worker(proc: subprocess.Popen[bytes], hard: bool = False) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


async def produce(bootstrap: str, topic: str, events: Sequence[EventBase], batch: int = 1) -> None:
    """Send ``events`` keyed as the gateway keys them; ``batch`` > 1 packs up to that many
    consecutive events of one key into a record, as the gateway does on BATCHED_TOPICS."""
    records: list[tuple[bytes, bytes]] = []
    for key, run in itertools.groupby(events, key=lambda e: e.partition_key()):
        encoded = [encode_event(e) for e in run]
        for i in range(0, len(encoded), batch):
            records.append((key, join_batch(encoded[i : i + batch])))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, options="-c timezone=UTC") as conn:
        return list(conn.execute(sql))  # type: ignore[call-overload]


def rollups(url: str) -> dict[tuple[str, object], tuple[int, int, int]]:
    rows = query(
        url, "SELECT site, minute, connected, new_sessions, ended_sessions FROM occupancy_minute"
    )
    return {(str(r[0]), r[1]): (int(r[2]), int(r[3]), int(r[4])) for r in rows}  # type: ignore[call-overload]


async def wait_for(
    condition: Callable[[], bool],
    timeout: float,  # noqa: ASYNC109 (poll-until deadline)
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
    interval: float = 0.5,
) -> None:
    """:func:`tests.support.net.until` that also stops when the worker process died."""

    def exited() -> str | None:
        if proc is not None and proc.poll() is not None:
            return f"worker exited ({proc.returncode}) before {what}"
        return None

    await until(
        condition, what, timeout, interval=interval, abort=exited, detail=lambda: tail(log_path)
    )


def live_sites(records: Sequence[Record]) -> set[str]:
    """Sites with a record on the live-occupancy topic. A worker republishes a site on each
    recompute (and a worker killed mid-stream may have published some sites many times),
    so what a test can rely on is which sites appear, not how many records there are."""
    return {OccupancyUpdateV1.model_validate_json(r.value or b"").site for r in records}


def tail(log_path: Path | None, chars: int = 3000) -> str:
    return log_path.read_text()[-chars:] if log_path else ""
