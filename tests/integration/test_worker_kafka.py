"""``tourpulse worker`` end to end: real Kafka in, real PostgreSQL out, exact rollups."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from core.settings import Settings
from schemas.batch import join_batch
from schemas.codec import encode_event
from schemas.stream_out import DeadLetterV1, OccupancyUpdateV1
from schemas.topics import KafkaTopic
from tests.support.wifi_helpers import T0, disorder, expected_rollups, generate, make_event
from tests.support.worker_support import (
    live_sites,
    produce,
    query,
    rollups,
    start_worker,
    stop_worker,
    wait_for,
    worker_topics,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
#: Run on TimescaleDB and on plain PostgreSQL (conftest.pytest_generate_tests).
BOTH_BACKENDS = True
TIMEOUT = timedelta(minutes=5)


async def test_worker_rollups_live_updates_and_dead_letters(
    settings: Settings, kafka_admin, tmp_path: Path
) -> None:
    await kafka_admin.create_topics(worker_topics(settings), partitions=4)
    sites = ["ben-thanh", "nha-tho", "dinh-doc-lap", "cho-lon"]
    events = generate(3000, sites, seed=21)
    late_stop = make_event("stop", "cho-lon", "never-seen-start", "aa" * 8, T0)
    stream = [*disorder(events, seed=2), late_stop]
    topic = settings.kafka_topic(KafkaTopic.WIFI_SESSION)
    # One site's events come as batch records (BATCHED_TOPICS), as the gateway sends them.
    batched = [e for e in stream if e.site == "nha-tho"]
    await produce(settings.kafka_bootstrap, topic, [e for e in stream if e.site != "nha-tho"])
    # Bad input on the worker's topic goes to the dead-letter topic, never into the tables;
    # a bad element of a batch costs only itself (its neighbour, a repeat, is not stored twice).
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for i in range(0, len(batched), 25):
            chunk = join_batch([encode_event(e) for e in batched[i : i + 25]])
            await producer.send_and_wait(topic, chunk, key=b"nha-tho")
        await producer.send_and_wait(topic, b"{not json", key=b"ben-thanh")
        bad_batch = join_batch([b"17", encode_event(batched[0])])
        await producer.send_and_wait(topic, bad_batch, key=b"nha-tho")
    finally:
        await producer.stop()

    log = tmp_path / "worker.log"
    proc = start_worker(settings, log, session_timeout=TIMEOUT.total_seconds())
    try:
        expected = expected_rollups([*events, late_stop], TIMEOUT)
        url = settings.database_url
        await wait_for(lambda: rollups(url) == expected, 180, "exact rollups", proc, log)
        assert query(url, "SELECT count(*) FROM wifi_session_events")[0][0] == len(events) + 1
        live = await kafka_admin.consume_until(
            settings.kafka_topic(KafkaTopic.OCCUPANCY_LIVE),
            lambda records: live_sites(records) >= set(sites),
            "a live update for every site",
        )
        updates = [OccupancyUpdateV1.model_validate_json(r.value) for r in live]
        assert {u.site for u in updates} == set(sites)
        assert all(r.key == u.site.encode() for r, u in zip(live, updates, strict=True))
        dead = await kafka_admin.consume_all(
            settings.kafka_topic(KafkaTopic.DEAD_LETTER), 2, timeout=60
        )
        letters = sorted(
            (DeadLetterV1.model_validate_json(d.value) for d in dead), key=lambda d: d.reason
        )
        assert [(d.reason, d.payload_size) for d in letters] == [
            ("invalid_json", len(b"{not json")),
            ("not_an_object", len(b"17")),
        ]
        assert letters[1].detail.startswith("batch element 0: ")
        base = re.search(r"(http://127\.0\.0\.1:\d+)/metrics", log.read_text())
        assert base, "worker did not log its metrics address"
        async with httpx.AsyncClient(base_url=base.group(1)) as client:
            health = await client.get("/healthz")
            metrics = (await client.get("/metrics")).text
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert f'tp_worker_events_total{{outcome="stored"}} {len(events) + 1}.0' in metrics
        assert 'tp_worker_rejected_total{reason="invalid_json"} 1.0' in metrics
        assert 'tp_worker_rejected_total{reason="not_an_object"} 1.0' in metrics
        assert "tp_worker_db_write_seconds_count" in metrics
    finally:
        stop_worker(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()


def test_worker_help_lists_options() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "infra.cli", "worker", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in ("--workers", "--session-timeout", "--batch-size", "--metrics-port"):
        assert option in out
