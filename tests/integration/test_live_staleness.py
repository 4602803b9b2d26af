"""The live feed across a Kafka outage: clients are told it is stale, then live again.

Measured before: after Kafka stopped the feed stayed "ready"; connected clients got no
sign, new clients a snapshot of unknown age with 200, while /healthz said 503. Runs on a
private broker (never the shared one), stopped and started again on the same port.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from core.settings import Settings
from infra.stack import kafka as stack_kafka
from infra.stack import manager
from infra.stack.state import StackConfig
from schemas.topics import KafkaTopic
from tests.support.api_support import (
    SseEvent,
    produce,
    read_occupancy,
    sse_events,
    update,
    uvicorn_server,
)
from tests.support.net import free_port, until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SITE = "ben-thanh-market"


async def _next_status(events: AsyncIterator[SseEvent], within: float) -> dict[str, Any]:
    async def find() -> dict[str, Any]:
        async for ev in events:
            if ev.event == "status":
                assert ev.id is None  # a status never moves the resume position
                return json.loads(ev.data)  # type: ignore[no-any-return]
        raise AssertionError("stream ended")

    return await asyncio.wait_for(find(), within)


async def test_kafka_outage_is_marked_stale_then_live_with_the_gap(
    settings: Settings, tmp_path: Path
) -> None:
    cfg = StackConfig(
        data_dir=tmp_path / "stack",
        kafka_port=free_port(pair=True),
        kafka_libs=REPO / ".tourpulse" / "kafka" / "libs",
    )
    kafka = stack_kafka.ensure_kafka(cfg, lambda _line: None)
    private = settings.model_copy(update={"kafka_bootstrap": cfg.kafka_bootstrap})
    topic = private.kafka_topic(KafkaTopic.OCCUPANCY_LIVE)
    try:
        await produce(cfg.kafka_bootstrap, topic, [update(SITE, 1)])  # auto-creates it
        app = create_app(private)
        async with (
            uvicorn_server(app) as base,
            httpx.AsyncClient(base_url=base, timeout=90) as client,
        ):
            # Until its feed is up the API answers 503 (a client retries): wait for it, as
            # a client would, instead of racing the feed's start (a CI run lost that race).
            await until(lambda: app.state.live.running, "the live feed", 60)
            async with client.stream("GET", "/api/v1/live") as response:
                events = sse_events(response)
                (first,) = await read_occupancy(events, 1)
                manager.stop_component(kafka)
                stale = await _next_status(events, 30)
                assert stale["state"] == "stale" and stale["since"]
                # A client arriving now gets the snapshot and is told it is stale.
                async with client.stream("GET", "/api/v1/live") as late:
                    late_events = sse_events(late)
                    await read_occupancy(late_events, 1)
                    assert (await _next_status(late_events, 10))["state"] == "stale"
                kafka = stack_kafka.ensure_kafka(cfg, lambda _line: None)
                live = await _next_status(events, 60)
                assert live["state"] == "live" and live["gap_s"] > 0
                await produce(cfg.kafka_bootstrap, topic, [update(SITE, 2)])
                (after,) = await read_occupancy(events, 1)  # resumed by itself
                assert json.loads(after.data)["connected"] == 2
                assert json.loads(first.data)["connected"] == 1
    finally:
        manager.stop_component(kafka)
