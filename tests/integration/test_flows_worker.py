"""``tourpulse flows`` as a subprocess on real Kafka and PostgreSQL: kill -9 mid-stream,
restart, and the flow tables are exactly what the events define; live updates obey k."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from core.settings import Settings
from schemas.topics import KafkaTopic
from tests.support.flows_helpers import expected_flows, flows_topics, start_flows, visitor_day
from tests.support.wifi_helpers import disorder
from tests.support.worker_support import produce, query, stop_worker, wait_for

pytestmark = pytest.mark.integration
#: Run on TimescaleDB and on plain PostgreSQL (conftest.pytest_generate_tests).
BOTH_BACKENDS = True
SITES = ["ben-thanh", "nha-tho", "dinh-doc-lap", "buu-dien", "cho-lon"]
TIMEOUT = timedelta(minutes=20)
K = 5


def _matches(url: str, hourly: dict, od: dict) -> bool:
    rows = query(
        url,
        "SELECT site, hour, unique_visitors, unique_visitors_stable, "
        "new_visitors, returning_visitors, dwell_sessions, dwell_median_s, "
        "dwell_p90_s FROM flow_hourly",
    )
    got = {(r[0], r[1]): tuple(r[2:]) for r in rows}
    if got.keys() != hourly.keys():
        return False
    for key, want in hourly.items():
        have = got[key]
        if have[:5] != want[:5]:
            return False
        for a, b in zip(have[5:], want[5:], strict=True):
            if (a is None) != (b is None) or (a is not None and abs(a - b) > 1e-6):  # type: ignore[operator]
                return False
    cells = query(
        url, "SELECT hour, origin, destination, clients, clients_stable FROM flow_od_hourly"
    )
    return {(r[0], r[1], r[2]): (r[3], r[4]) for r in cells} == od


async def test_kill_9_mid_stream_loses_and_doubles_nothing(
    settings: Settings, kafka_admin: object, tmp_path: Path
) -> None:
    await kafka_admin.create_topics(flows_topics(settings))  # type: ignore[attr-defined]
    events = visitor_day(250, SITES, seed=21)
    messy = disorder(events, seed=2)
    half = len(messy) // 2
    source = settings.kafka_topic(KafkaTopic.WIFI_SESSION)
    url = settings.database_url
    log = tmp_path / "flows.log"
    args = (
        "--no-fusion",
        "--no-retention",
        "--batch-size",
        "40",
        "--batch-window",
        "0.05",
        "--min-count",
        str(K),
        "--lateness",
        str(3 * 86400),
        "--session-timeout",
        str(TIMEOUT.total_seconds()),
    )
    await produce(settings.kafka_bootstrap, source, messy[:half])
    proc = start_flows(settings, log, *args)
    try:
        await wait_for(
            lambda: query(url, "SELECT count(*) FROM visitor_sessions")[0][0] > 50,
            120,
            "first batches stored",
            proc,
            log,
        )
        stop_worker(proc, hard=True)
        # The rest, plus a replay of what was already sent (as a flaky producer would).
        await produce(settings.kafka_bootstrap, source, messy[half:] + messy[: half // 2], batch=20)
        proc = start_flows(settings, log, *args)
        hourly, od = expected_flows(events, TIMEOUT)
        await wait_for(lambda: _matches(url, hourly, od), 180, "exact flow tables", proc, log)
        assert sum(n for n, _ in od.values()) > 20
        await wait_for(
            lambda: query(url, "SELECT count(*) FROM flow_dirty_hours") == [(0,)],
            60,
            "all replays merged and recomputed",
            proc,
            log,
        )
        assert _matches(url, hourly, od)  # the replays changed nothing
        records = await kafka_admin.consume_all(  # type: ignore[attr-defined]
            settings.kafka_topic(KafkaTopic.FLOWS_HOURLY), 1, timeout=60
        )
        small = {(h, o, d) for (h, o, d), (n, _) in od.items() if n < K}
        assert small, "the day should have cells below k"
        for rec in records:
            msg = json.loads(rec.value)
            assert msg["min_count"] == K
            assert all(i["clients"] >= K for i in msg["inflows"])
    finally:
        stop_worker(proc)
    assert "Traceback" not in log.read_text()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


async def test_health_and_metrics_endpoints(
    settings: Settings, kafka_admin: object, tmp_path: Path
) -> None:
    """/healthz turns ok once the worker is up; /metrics carries the flows counters."""
    await kafka_admin.create_topics(flows_topics(settings))  # type: ignore[attr-defined]
    log = tmp_path / "flows.log"
    proc = start_flows(settings, log, "--no-retention")
    try:
        pattern = re.compile(r"metrics and health on (http://127\.0\.0\.1:\d+)/metrics")
        await wait_for(lambda: bool(pattern.search(log.read_text())), 60, "metrics url", proc, log)
        match = pattern.search(log.read_text())
        assert match is not None
        base = match.group(1)
        deadline = time.monotonic() + 60
        while (health := await asyncio.to_thread(_get, base + "/healthz"))[0] != 200:
            assert time.monotonic() < deadline, health
            await asyncio.sleep(0.5)
        assert json.loads(health[1])["status"] == "ok"
        status, body = await asyncio.to_thread(_get, base + "/metrics")
        assert status == 200 and b"tp_flows_events_total" in body
    finally:
        stop_worker(proc)
