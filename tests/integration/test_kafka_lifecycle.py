"""A Kafka client cancelled while it starts leaves no connection open (real broker).

aiokafka's bootstrap awaits the cluster's metadata on a fresh connection with no
``finally``; an API stopped while its live feed was starting (a quick app lifespan in the
tests) left that connection to the garbage collector: "ResourceWarning: unclosed
AIOKafkaConnection". The broker is made slow to answer metadata so the cancellation lands
there every time, as it did by chance with thousands of topics on the shared dev broker.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.conn import AIOKafkaConnection
from aiokafka.protocol.metadata import MetadataRequest

from core.kafka_lifecycle import start_shielded
from infra.stack.manager import Endpoints

pytestmark = pytest.mark.integration


def _slow_metadata(monkeypatch: pytest.MonkeyPatch, delay_s: float) -> None:
    send = AIOKafkaConnection.send

    def slow(self: AIOKafkaConnection, request: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(request, MetadataRequest):  # the bootstrap's request (all topics)

            async def later() -> Any:
                await asyncio.sleep(delay_s)
                return await send(self, request, *args, **kwargs)

            return later()
        return send(self, request, *args, **kwargs)

    monkeypatch.setattr(AIOKafkaConnection, "send", slow)


async def _cancel_while_starting(
    consumer: AIOKafkaConsumer, start: Callable[[AIOKafkaConsumer], Awaitable[None]]
) -> list[str]:
    async def run() -> None:
        try:
            await start(consumer)
            await asyncio.sleep(60)
        finally:
            await consumer.stop()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        task = asyncio.create_task(run())
        await asyncio.sleep(0.2)  # inside the slowed metadata request
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        del task
        gc.collect()
        await asyncio.sleep(0)
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


async def test_a_consumer_cancelled_mid_start_closes_its_connection(
    stack: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    _slow_metadata(monkeypatch, 0.5)
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap)
    leaks = await _cancel_while_starting(consumer, start_shielded)
    assert not [w for w in leaks if "AIOKafkaConnection" in w], leaks


async def test_the_slow_broker_does_reproduce_the_leak_without_the_shield(
    stack: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves the test above can fail: the plain start leaks in the same situation."""
    _slow_metadata(monkeypatch, 0.5)
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap)
    leaks = await _cancel_while_starting(consumer, lambda c: c.start())
    assert [w for w in leaks if "AIOKafkaConnection" in w], leaks
