"""A live feed started before one of its topics exists follows that topic once it is made.

A city's Kafka does not create topics because a client asks for them (the dev broker
does, which is why this path had no test): the IOC feed of an API started before the flows
worker's first run starts without that topic and must pick it up later, without losing
what it already follows. Runs on a private broker with topic auto-creation off.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from api.live import consumer as consumer_module
from api.live.consumer import FeedTopic, LiveFeed, parse_occupancy
from api.live.hub import Hub
from api.metrics import ApiMetrics
from infra.stack import kafka as stack_kafka
from infra.stack import manager
from infra.stack.state import StackConfig
from tests.support.api_support import produce, update
from tests.support.net import free_port, until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SITE = "ben-thanh-market"


@pytest.fixture
def strict_kafka(tmp_path: Path) -> Iterator[str]:
    """A private broker that only has the topics someone created."""
    cfg = StackConfig(
        data_dir=tmp_path / "stack",
        kafka_port=free_port(pair=True),
        kafka_libs=REPO / ".tourpulse" / "kafka" / "libs",
        kafka_auto_create=False,
    )
    kafka = stack_kafka.ensure_kafka(cfg, lambda _line: None)
    try:
        yield cfg.kafka_bootstrap
    finally:
        manager.stop_component(kafka)


def _create(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)


async def test_a_topic_created_after_the_feed_started_is_followed(
    strict_kafka: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumer_module, "ASSIGN_TIMEOUT_S", 3.0)
    monkeypatch.setattr(consumer_module, "MISSING_TOPIC_RECHECK_S", 1.0)
    ns = uuid.uuid4().hex[:8]
    occupancy, late = f"{ns}.occupancy", f"{ns}.late"
    _create(strict_kafka, occupancy)
    await produce(strict_kafka, occupancy, [update(SITE, 7)])
    metrics = ApiMetrics()
    hub = Hub(metrics, 100, 100)
    extra = [FeedTopic(late, "late", parse_occupancy)]
    feed = LiveFeed(strict_kafka, occupancy, hub, metrics, 10, extra)
    feed.start()
    try:
        await until(lambda: SITE in hub.latest_of("occupancy"), "the feed follows occupancy", 60)
        assert (
            late
            not in AdminClient({"bootstrap.servers": strict_kafka}).list_topics(timeout=10).topics
        )  # subscribing did not create it
        _create(strict_kafka, late)
        await produce(strict_kafka, late, [update(SITE, 42)])
        await until(lambda: SITE in hub.latest_of("late"), "the late topic's message", 60)
        assert '"connected":42' in hub.latest_of("late")[SITE].data
        await produce(strict_kafka, occupancy, [update(SITE, 8)])  # still following the first
        await until(
            lambda: '"connected":8' in hub.latest_of("occupancy")[SITE].data,
            "occupancy after the resubscription",
            60,
        )
    finally:
        await feed.stop()
