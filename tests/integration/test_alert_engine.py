"""The alert engine against a real PostgreSQL: rules -> one alert per condition -> feed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from psycopg_pool import AsyncConnectionPool

from core.settings import DEVICE_CONFIG_DIR
from device_configs import load_device_configs
from schemas.device import AvailabilityData, AvailabilityV1, DeviceHeartbeatV1, HeartbeatData
from schemas.stream_out import AlertChangedV1, FusedOccupancyV1
from stream.alerts.engine import AlertEngine
from stream.alerts.lifecycle import AlertState
from stream.alerts.store import AlertStore

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
SITE = "ben-thanh-market"  # capacity 3000 in the shipped configs


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def engine(
    database_url: str,
) -> AsyncIterator[tuple[AlertEngine, list[AlertChangedV1], Clock, AlertStore]]:
    published: list[AlertChangedV1] = []

    async def publish(change: AlertChangedV1) -> None:
        published.append(change)

    clock = Clock()
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as pool:
        store = AlertStore(pool)
        configs = load_device_configs(DEVICE_CONFIG_DIR)
        yield AlertEngine(configs, store, publish, clock=clock), published, clock, store


def occupancy(people: float, seconds: float) -> FusedOccupancyV1:
    at = T0 + timedelta(seconds=seconds)
    return FusedOccupancyV1(
        site=SITE, people=people, low=people * 0.9, high=people * 1.1, as_of=at, emitted_at=at
    )


async def test_overcrowding_raises_once_and_clears(engine) -> None:  # type: ignore[no-untyped-def]
    eng, published, _, store = engine
    for second in range(0, 121, 5):  # 2 900 people (> 90 % of 3 000) for two minutes
        await eng.on_occupancy(occupancy(2900, second))
    active = await store.search(site=SITE, states=[AlertState.ACTIVE_UNACK])
    assert [a.alert.type for a in active] == ["occupancy.high"]
    raised = [c for c in published if c.action == "raise"]
    assert len(raised) == 1 and raised[0].alert.details["occupancy"] == 2900
    # Retriggers refresh the alert at most every 30 s, not on every update.
    assert 1 <= sum(c.action == "retrigger" for c in published) <= 3
    await eng.on_occupancy(occupancy(2500, 130))  # in the hysteresis band: stays active
    assert (await store.get(active[0].id)).alert.state is AlertState.ACTIVE_UNACK
    await eng.on_occupancy(occupancy(2000, 140))
    assert (await store.get(active[0].id)).alert.state is AlertState.CLEARED_UNACK
    assert published[-1].action == "clear"


async def test_device_offline_by_last_will_and_by_silence(engine) -> None:  # type: ignore[no-untyped-def]
    eng, published, clock, store = engine
    will = AvailabilityV1(
        site=SITE,
        device="edge-a",
        source="t",
        event_time=T0,
        ingest_time=T0,
        data=AvailabilityData(state="offline", reason="last-will"),
    )
    await eng.on_availability(will)
    beat = DeviceHeartbeatV1(
        site=SITE,
        device="edge-b",
        source="t",
        event_time=T0,
        ingest_time=T0,
        data=HeartbeatData(uptime_s=5),
    )
    await eng.on_heartbeat(beat)
    clock.now = T0 + timedelta(seconds=200)
    await eng.tick()
    offline = {a.alert.originator for a in await store.search(states=[AlertState.ACTIVE_UNACK])}
    assert offline == {"edge-a", "edge-b"}
    back = beat.model_copy(update={"ingest_time": clock.now})
    await eng.on_heartbeat(back)
    still = {a.alert.originator for a in await store.search(states=[AlertState.ACTIVE_UNACK])}
    assert still == {"edge-a"}
    assert [c.alert.originator for c in published if c.action == "clear"] == ["edge-b"]


async def test_unacknowledged_alert_escalates(engine) -> None:  # type: ignore[no-untyped-def]
    eng, published, clock, _ = engine
    will = AvailabilityV1(
        site=SITE,
        device="edge-c",
        source="t",
        event_time=T0,
        ingest_time=T0,
        data=AvailabilityData(state="offline"),
    )
    await eng.on_availability(will)
    clock.now = T0 + timedelta(minutes=11)  # escalation_after_s is 600 in alerting.yaml
    (escalated,) = await eng.escalate()
    assert escalated.alert.severity.name == "CRITICAL"
    assert published[-1].action == "escalate"
