"""A quiet live feed checks its broker without asking for the whole cluster's metadata.

Measured before: every 3 s of silence the feed called ``consumer.topics()``, a Metadata
request for every topic of the cluster. On a broker holding 4,117 topics, parsing the answer
held the API's event loop for 100-150 ms and set off 100 ms full garbage collections, and
alerts reaching the IOC in those windows waited (bench alerts: p99 of the engine -> SSE leg
150-450 ms; 12-15 ms once the probe asked only its own partitions' leaders). Building such a
cluster here would take minutes, so the test checks the cause on the wire: over two probe
intervals the feed stays live, its brokers are asked (ListOffsets for its own partitions)
and no all-topics Metadata request is sent.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.client import AIOKafkaClient

from api.live.consumer import LIVENESS_PROBE_S, LiveFeed
from api.live.hub import Hub
from api.metrics import ApiMetrics
from core.settings import Settings
from tests.support.api_support import produce, update
from tests.support.net import until

pytestmark = pytest.mark.integration


async def test_a_quiet_feed_probes_its_own_partitions_not_the_whole_cluster(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"probe-{uuid.uuid4().hex[:8]}.occupancy"
    await produce(settings.kafka_bootstrap, topic, [update("ben-thanh-market", 3)])
    metrics = ApiMetrics()
    hub = Hub(metrics, 10, 10)
    feed = LiveFeed(settings.kafka_bootstrap, topic, hub, metrics, prime_messages=5)
    whole_cluster: list[float] = []
    own_partitions: list[float] = []
    fetch_all = AIOKafkaClient.fetch_all_metadata
    end_offsets = AIOKafkaConsumer.end_offsets

    async def spy_fetch_all(self: AIOKafkaClient) -> Any:
        whole_cluster.append(asyncio.get_running_loop().time())
        return await fetch_all(self)

    async def spy_end_offsets(self: AIOKafkaConsumer, partitions: Any) -> Any:
        own_partitions.append(asyncio.get_running_loop().time())
        return await end_offsets(self, partitions)

    monkeypatch.setattr(AIOKafkaClient, "fetch_all_metadata", spy_fetch_all)
    monkeypatch.setattr(AIOKafkaConsumer, "end_offsets", spy_end_offsets)
    feed.start()
    try:
        await until(lambda: feed.running and hub.positions, "the feed is primed", 60)
        whole_cluster.clear()
        own_partitions.clear()
        await asyncio.sleep(2 * LIVENESS_PROBE_S + 1.5)  # silence: the probe must run
        assert len(own_partitions) >= 2, own_partitions  # the liveness probe ran
        assert whole_cluster == []
        assert hub.stale_since is None  # and found the broker alive
        await feed.probe()  # /healthz's check asks the same way
        assert whole_cluster == []
    finally:
        await feed.stop()
