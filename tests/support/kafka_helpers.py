"""Kafka helpers for tests: create namespaced topics and read them back with aiokafka.

Tests own their topics (unique namespace per test), so these helpers create them
explicitly instead of relying on auto-creation, and read with a fresh consumer from the
earliest offset so nothing published before the consumer joined is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas.batch import is_batch

T = TypeVar("T")


async def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 4,
    timeout: float = 60.0,  # noqa: ASYNC109 (poll-until deadline)
) -> None:
    """Create ``names`` (idempotent) and wait until the broker serves their metadata."""
    wanted = list(names)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(
                [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in wanted]
            )
        deadline = time.monotonic() + timeout
        while True:
            existing = set(await admin.list_topics())
            if existing.issuperset(wanted):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not visible after {timeout}s: {set(wanted) - existing}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def consume_all(
    bootstrap: str,
    topic: str,
    n: int,
    timeout: float = 60.0,  # noqa: ASYNC109 (poll-until deadline)
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read at least ``n`` records of ``topic`` from the beginning, or fail after ``timeout``.

    Returns every record read (possibly more than ``n`` when a batch overshoots), so a test
    can also assert that nothing extra arrived.
    """
    return await _read(bootstrap, topic, n, timeout, "records", lambda record: [record])


async def consume_events(
    bootstrap: str,
    topic: str,
    n: int,
    timeout: float = 60.0,  # noqa: ASYNC109 (poll-until deadline)
) -> list[bytes]:
    """Read at least ``n`` events of ``topic`` from the beginning: each record's event, or
    each element of a batch record (``schemas.topics.BATCHED_TOPICS``), as JSON bytes."""
    return await _read(bootstrap, topic, n, timeout, "events", _events_of)


def _events_of(record: ConsumerRecord[bytes, bytes]) -> list[bytes]:
    value = record.value or b""
    return [orjson.dumps(e) for e in orjson.loads(value)] if is_batch(value) else [value]


async def _read(
    bootstrap: str,
    topic: str,
    n: int,
    timeout: float,  # noqa: ASYNC109 (poll-until deadline)
    what: str,
    unpack: Callable[[ConsumerRecord[bytes, bytes]], list[T]],
) -> list[T]:
    """Read ``topic`` from the beginning until ``unpack`` has given at least ``n`` items."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    items: list[T] = []
    try:
        deadline = time.monotonic() + timeout
        while len(items) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{topic}: got {len(items)} of {n} {what} in {timeout}s")
            batches = await consumer.getmany(timeout_ms=int(min(left, 1.0) * 1000))
            for batch in batches.values():
                for record in batch:
                    items.extend(unpack(record))
        return items
    finally:
        await consumer.stop()
