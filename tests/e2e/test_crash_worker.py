"""kill -9 the worker mid-stream, restart it: the rollups are still exactly right.

The expectation is computed from the generated events alone (tests/wifi_helpers.py), so a
replayed batch counted twice, or a batch acked but never stored, makes this fail.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from core.settings import Settings
from schemas.topics import KafkaTopic
from tests.support.wifi_helpers import expected_rollups, generate
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
TIMEOUT = timedelta(minutes=5)
SITES = [
    "ben-thanh",
    "nha-tho",
    "dinh-doc-lap",
    "cho-lon",
    "bui-vien",
    "bitexco",
    "thao-cam-vien",
    "ben-nha-rong",
]


def _stored(url: str) -> int:
    return int(query(url, "SELECT count(*) FROM wifi_session_events")[0][0])  # type: ignore[call-overload]


async def test_kill_9_mid_stream_then_restart_gives_exact_rollups(
    settings: Settings, kafka_admin, tmp_path: Path
) -> None:
    await kafka_admin.create_topics(worker_topics(settings), partitions=4)
    events = generate(20_000, SITES, seed=99)
    topic = settings.kafka_topic(KafkaTopic.WIFI_SESSION)
    url = settings.database_url
    half = len(events) // 2
    await produce(settings.kafka_bootstrap, topic, events[:half])

    log = tmp_path / "worker.log"
    secs = TIMEOUT.total_seconds()
    first = start_worker(settings, log, session_timeout=secs)
    try:
        # Killed as soon as its first batches are stored, polled closely: producing the
        # second half before the kill gave the worker time to store 19,943 of 20,000.
        await wait_for(
            lambda: _stored(url) >= 2000, 120, "first batches stored", first, log, interval=0.02
        )
    finally:
        stop_worker(first, hard=True)
    assert first.returncode == -9
    killed_at = _stored(url)
    assert killed_at < half, "worker finished its half before it was killed: nothing tested"
    await produce(settings.kafka_bootstrap, topic, events[half:])

    second = start_worker(settings, log, session_timeout=secs)
    try:
        await wait_for(lambda: _stored(url) == len(events), 240, "all events stored", second, log)
        expected = expected_rollups(events, TIMEOUT)
        await wait_for(lambda: rollups(url) == expected, 120, "exact rollups", second, log)
        sessions = query(url, "SELECT count(*) FROM wifi_sessions")[0][0]
        assert sessions == len({(e.site, e.data.session_id) for e in events})
        live = await kafka_admin.consume_until(
            settings.kafka_topic(KafkaTopic.OCCUPANCY_LIVE),
            lambda records: live_sites(records) >= set(SITES),
            "a live update for every site",
        )
        assert live_sites(live) == set(SITES)
    finally:
        stop_worker(second)
    print(f"killed after {killed_at} of {len(events)} events were stored")
