"""The live SSE feed end to end: Kafka topic -> API consumer -> hub -> real HTTP stream."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.config import ApiTuning
from core.settings import Settings
from schemas.topics import KafkaTopic
from tests.support.api_support import (
    produce,
    read_occupancy,
    sse_events,
    update,
    uvicorn_server,
)
from tests.support.net import until

pytestmark = pytest.mark.integration

SITES = ["ben-thanh-market", "notre-dame-cathedral", "cu-chi-tunnels"]


def _payloads(events: list[Any]) -> list[tuple[str, int]]:
    return [(json.loads(e.data)["site"], json.loads(e.data)["connected"]) for e in events]


async def _setup(settings: Settings, kafka_admin: Any) -> str:
    topic = settings.kafka_topic(KafkaTopic.OCCUPANCY_LIVE)
    await kafka_admin.create_topics([topic], partitions=3)
    return topic


@pytest.mark.parametrize(("ring_size", "source"), [(10_000, "ring"), (2, "kafka")])
async def test_live_snapshot_then_live_then_exact_resume(
    settings: Settings, kafka_admin: Any, ring_size: int, source: str
) -> None:
    topic = await _setup(settings, kafka_admin)
    bootstrap = settings.kafka_bootstrap
    # Before the API starts: two states of ben-thanh, one of notre-dame (primed at boot).
    await produce(bootstrap, topic, [update(SITES[0], 1), update(SITES[1], 2), update(SITES[0], 3)])
    app = create_app(settings, ApiTuning(live_ring_size=ring_size))
    async with uvicorn_server(app) as base, httpx.AsyncClient(base_url=base, timeout=60) as client:
        await until(lambda: sum(app.state.live.hub.positions.values()) == 3, "priming")
        async with client.stream("GET", "/api/v1/live") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse_events(response)
            preamble = await anext(events)
            assert preamble.retry == 3000
            snapshot = await read_occupancy(events, 2)
            assert sorted(_payloads(snapshot)) == [(SITES[0], 3), (SITES[1], 2)]
            live = [update(SITES[i % 3], 100 + i) for i in range(5)]
            await produce(bootstrap, topic, [*live[:2], b"not an occupancy update", *live[2:]])
            got = await read_occupancy(events, 2)
            all_live = {(m.site, m.connected) for m in live}
            assert set(_payloads(got)) <= all_live
            last_id = got[-1].id
        # Disconnected: whatever was still on the wire is "missed", plus four more.
        more = [update(SITES[i % 3], 200 + i) for i in range(4)]
        await produce(bootstrap, topic, more)
        await until(lambda: sum(app.state.live.hub.positions.values()) == 3 + 6 + 4, "hub")
        expected = all_live | {(m.site, m.connected) for m in more}
        expected -= set(_payloads(got))
        async with client.stream("GET", "/api/v1/live", headers={"Last-Event-ID": last_id}) as r:
            events = sse_events(r)
            resumed = await read_occupancy(events, len(expected))
            assert sorted(_payloads(resumed)) == sorted(expected)  # each once, none missed
            sentinel = update(SITES[2], 999)
            await produce(bootstrap, topic, [sentinel])
            (after,) = await read_occupancy(events, 1)
            assert _payloads([after]) == [(SITES[2], 999)]  # nothing extra came in between
        metrics = (await client.get("/metrics")).text
    assert f'tp_api_live_resumes_total{{source="{source}"}} 1.0' in metrics
    assert "tp_api_live_invalid_messages_total 1.0" in metrics
    assert "tp_api_live_messages_consumed_total 14.0" in metrics
    assert app.state.metrics.sse_clients._value.get() == 0


async def test_live_site_filter_and_unknown_site(settings: Settings, kafka_admin: Any) -> None:
    topic = await _setup(settings, kafka_admin)
    app = create_app(settings)
    async with uvicorn_server(app) as base, httpx.AsyncClient(base_url=base, timeout=60) as client:
        await until(lambda: app.state.live.running, "the live consumer to be assigned")
        unknown = await client.get("/api/v1/live", params={"site": "atlantis"})
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "site_not_found"
        async with client.stream("GET", "/api/v1/live", params={"site": SITES[1]}) as response:
            events = sse_events(response)
            await until(lambda: app.state.live.hub.client_count == 1, "the client to subscribe")
            await produce(
                bootstrap := settings.kafka_bootstrap,
                topic,
                [update(SITES[0], 1), update(SITES[1], 2), update(SITES[2], 3)],
            )
            await produce(bootstrap, topic, [update(SITES[1], 4)])
            got = await read_occupancy(events, 2)
        assert _payloads(got) == [(SITES[1], 2), (SITES[1], 4)]
