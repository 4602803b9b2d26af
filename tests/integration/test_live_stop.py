"""A live feed stops when asked, whatever it was doing (real broker).

aiokafka's client ``close()`` awaits its metadata task inside ``suppress(CancelledError)``:
a feed cancelled while it closed its probe client lost the cancellation, went on to
subscribe and consume, and the API's shutdown waited for it forever (a CI run hung 300 s in
``test_occupancy_history_buckets``). Here that close is made to last long enough for the
stop to land in it every time; the await is still aiokafka's own shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.client import AIOKafkaClient

from api.live.consumer import LiveFeed
from api.live.hub import Hub
from api.metrics import ApiMetrics
from infra.stack.manager import Endpoints
from tests.support.api_support import produce, update

pytestmark = pytest.mark.integration


async def test_a_feed_stopped_while_its_probe_closes_does_stop(
    stack: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"t{uuid.uuid4().hex[:8]}.occupancy"
    await produce(stack.kafka_bootstrap, topic, [update("ben-thanh-market", 3)])
    closing = asyncio.Event()
    close = AIOKafkaClient.close

    async def close_slowly(self: AIOKafkaClient, *args: Any, **kwargs: Any) -> None:
        closing.set()
        with contextlib.suppress(asyncio.CancelledError):  # as close() awaits its sync task
            await asyncio.sleep(0.5)
        await close(self, *args, **kwargs)

    monkeypatch.setattr(AIOKafkaClient, "close", close_slowly)
    starts: list[frozenset[str]] = []
    start = AIOKafkaConsumer.start

    async def counted_start(self: AIOKafkaConsumer) -> None:
        starts.append(frozenset(self.subscription()))
        await start(self)

    monkeypatch.setattr(AIOKafkaConsumer, "start", counted_start)
    metrics = ApiMetrics()
    feed = LiveFeed(stack.kafka_bootstrap, topic, Hub(metrics, 100, 100), metrics, 10)
    feed.start()
    await asyncio.wait_for(closing.wait(), 30)  # the probe client is closing
    await asyncio.wait_for(feed.stop(), 10)
    assert not feed.running
    assert starts == [frozenset()]  # the probe only: the feed did not go on to subscribe
