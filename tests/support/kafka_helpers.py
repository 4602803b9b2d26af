"""Kafka helpers for tests: create namespaced topics and read them back.

Tests own their topics (unique namespace per test), so these helpers create them
explicitly instead of relying on auto-creation, and read with a fresh consumer from the
earliest offset so nothing published before the consumer joined is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

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


@dataclass(frozen=True, slots=True)
class Record:
    """One record read back: what tests assert on."""

    partition: int
    key: bytes | None
    value: bytes | None


async def consume_all(
    bootstrap: str,
    topic: str,
    n: int,
    timeout: float = 60.0,  # noqa: ASYNC109 (poll-until deadline)
) -> list[Record]:
    """Read at least ``n`` records of ``topic`` from the beginning, or fail after ``timeout``.

    Returns every record read (possibly more than ``n`` when a batch overshoots), so a test
    can also assert that nothing extra arrived.
    """
    return await _read(bootstrap, topic, _at_least(n), f"{n} records", timeout, _one)


async def consume_until(
    bootstrap: str,
    topic: str,
    enough: Callable[[list[Record]], bool],
    wanted: str,
    timeout: float = 60.0,  # noqa: ASYNC109 (poll-until deadline)
) -> list[Record]:
    """Read ``topic`` from the beginning until ``enough(records read so far)`` holds.

    For topics whose record count is not fixed, such as live updates a worker republishes
    on every recompute: "the first n records" can then be n updates of some keys and none
    of others. ``wanted`` says in words what ``enough`` waits for, for the timeout error.
    """
    return await _read(bootstrap, topic, enough, wanted, timeout, _one)


async def consume_events(
    bootstrap: str,
    topic: str,
    n: int,
    timeout: float = 60.0,  # noqa: ASYNC109 (poll-until deadline)
) -> list[bytes]:
    """Read at least ``n`` events of ``topic`` from the beginning: each record's event, or
    each element of a batch record (``schemas.topics.BATCHED_TOPICS``), as JSON bytes."""
    return await _read(bootstrap, topic, _at_least(n), f"{n} events", timeout, _events_of)


def _at_least(n: int) -> Callable[[list[T]], bool]:
    return lambda items: len(items) >= n


def _one(record: Record) -> list[Record]:
    return [record]


def _events_of(record: Record) -> list[bytes]:
    value = record.value or b""
    return [orjson.dumps(e) for e in orjson.loads(value)] if is_batch(value) else [value]


async def _read(
    bootstrap: str,
    topic: str,
    enough: Callable[[list[T]], bool],
    wanted: str,
    timeout: float,  # noqa: ASYNC109 (poll-until deadline)
    unpack: Callable[[Record], list[T]],
) -> list[T]:
    """Read ``topic`` from the beginning until the items ``unpack`` gives are ``enough``.

    librdkafka, every partition assigned at its first offset: an aiokafka reader twice saw
    only part of a dead-letter topic whose leaders were still settling (ListOffsets answered
    NOT_LEADER) while the gateway had every record confirmed. On a timeout the error names
    each partition's records read against its high watermark, so a shortfall says at once
    whether the records are in Kafka at all.
    """
    return await asyncio.to_thread(
        _read_blocking, bootstrap, topic, enough, wanted, timeout, unpack
    )


def _read_blocking(
    bootstrap: str,
    topic: str,
    enough: Callable[[list[T]], bool],
    wanted: str,
    timeout: float,
    unpack: Callable[[Record], list[T]],
) -> list[T]:
    deadline = time.monotonic() + timeout
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "tests-reader",  # required by the API; nothing is committed
            "enable.auto.commit": False,
            "allow.auto.create.topics": False,
            "log_level": 3,
        }
    )
    items: list[T] = []
    read: Counter[int] = Counter()
    try:
        partitions = _partitions(consumer, topic, deadline)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        while not enough(items):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"{topic}: {len(items)} items read, not {wanted}, in {timeout}s; "
                    f"{_per_partition(consumer, topic, partitions, read)}"
                )
            for msg in consumer.consume(num_messages=1000, timeout=min(left, 0.5)):
                if msg.error() is not None:
                    continue  # transient (leader moving, end of partition): keep polling
                record = Record(msg.partition() or 0, msg.key(), msg.value())
                read[record.partition] += 1
                items.extend(unpack(record))
        return items
    finally:
        consumer.close()


def _partitions(consumer: Consumer, topic: str, deadline: float) -> list[int]:
    """The topic's partitions, waiting (until ``deadline``) for it to exist."""
    while True:
        meta = consumer.list_topics(topic, timeout=5.0).topics.get(topic)
        if meta is not None and meta.error is None and meta.partitions:
            return sorted(meta.partitions)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{topic}: no partitions visible ({meta and meta.error})")
        time.sleep(0.2)


def _per_partition(
    consumer: Consumer, topic: str, partitions: list[int], read: Counter[int]
) -> str:
    parts = []
    for p in partitions:
        try:
            high = str(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5.0)[1])
        except KafkaException as exc:
            high = f"unknown ({exc})"
        parts.append(f"p{p} read {read[p]} of high watermark {high}")
    return ", ".join(parts)
