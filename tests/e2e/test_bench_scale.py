"""``tourpulse bench scale --quick``: the scale benchmark's whole path, briefly.

Real parts throughout: a private 3-broker Kafka cluster, a private Mosquitto, two gateways
and two workers (the real CLI), the edge link with its outbox as the sender, a fresh
database on the shared PostgreSQL. The figures of a 20-second run mean little; what is
checked is that the run delivered every event (the benchmark fails on a missing one) and
that every figure the report needs is there and plausible.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.settings import Settings
from infra.bench import cli as bench_cli
from infra.bench.capacity import city_load_events_per_s
from infra.bench.context import BenchContext
from infra.bench.edge_fleet import MAX_CHUNK

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STAGES = {"edge_link", "mosquitto", "gateway", "kafka", "worker", "postgres"}


def test_scale_quick_run_reports_every_figure(settings: Settings, tmp_path: Path) -> None:
    if shutil.which("java") is None:
        pytest.skip("java is not installed (default-jdk-headless)")
    ctx = BenchContext(settings, tmp_path, quick=True, duration_s=6)
    assert bench_cli.run_one("scale", ctx)
    result = json.loads((tmp_path / "scale.json").read_text())

    city = city_load_events_per_s(settings.device_configs)
    assert result["city_load_events_per_s"] == city > 0
    assert result["load_multiple"] == 10 and result["brokers"] == 3
    assert result["gateways"] == 2 and result["workers"] == 2
    assert result["duration_s"] >= 6
    # Paced at 10x the city, never faster. How close the sender gets to that depends on
    # the machine's load (CI runs this beside other tests), so no rate is asserted; the
    # benchmark itself fails if any submitted event is not stored.
    offered = result["offered_events_per_s"]
    assert offered == pytest.approx(10 * city, abs=0.1)
    assert 0 < result["events"] <= offered * result["duration_s"] + MAX_CHUNK
    assert 0 < result["submitted_events_per_s"] <= offered * 1.05
    # Sustained counts until the last row is stored, so the drain can only lower it.
    assert 0 < result["sustained_events_per_s"] <= result["submitted_events_per_s"] + 0.1
    assert result["latency_ms"]["samples"] >= result["events"] // 10
    assert result["latency_ms_p95_max_minute"] == max(result["latency_ms_p95_per_minute"])
    assert result["consumer_lag"] and result["max_consumer_lag"] >= 0
    assert set(result["cpu_ms_per_event"]) == STAGES
    assert all(result["cpu_ms_per_event"][s] > 0 for s in STAGES - {"postgres"})
    assert set(result["extrapolation_100x"]["cores"]) == STAGES
    assert result["saturates_first"]["stage"] in STAGES
