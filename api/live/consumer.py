"""The one Kafka consumer of an API process, feeding the :class:`~api.live.hub.Hub`.

No consumer group: every API replica must see every message, and positions live in SSE
event ids rather than in committed offsets. At boot it re-reads the last few messages of
each partition so the snapshot (latest state per site) is known before the first client
arrives, then follows the topic. Failures (broker down, topic not created yet) are
logged, counted and retried with backoff; the API keeps serving history meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from api.live.hub import Hub, LiveMessage
from api.live.positions import Positions
from api.metrics import ApiMetrics
from schemas.stream_out import OccupancyUpdateV1

log = logging.getLogger(__name__)

#: Seconds between restarts of a failed consumer (doubling up to the max).
RETRY_MIN_S, RETRY_MAX_S = 1.0, 30.0
#: How long the consumer waits for the topic to exist and get its partitions assigned.
ASSIGN_TIMEOUT_S = 30.0


def to_live_message(partition: int, offset: int, raw: bytes | None) -> LiveMessage | None:
    """Validate a Kafka record; ``None`` if it is not an OccupancyUpdateV1."""
    try:
        update = OccupancyUpdateV1.model_validate_json(raw or b"")
    except ValidationError:
        return None
    return LiveMessage(partition, offset, update.site, update.model_dump_json())


@dataclass
class LiveFeed:
    bootstrap: str
    topic: str
    hub: Hub
    metrics: ApiMetrics
    prime_messages: int
    last_error: str | None = None
    last_message_at: float | None = None
    _consumer: AIOKafkaConsumer | None = field(default=None, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-kafka-consumer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.hub.close()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and self.hub.ready

    async def probe(self) -> None:
        """Ask the broker for metadata: proves the connection is alive right now."""
        if self._consumer is None:
            raise KafkaError(self.last_error or "live consumer not started")
        await self._consumer.topics()

    async def _run(self) -> None:
        delay = RETRY_MIN_S
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.metrics.live_consumer_errors.inc()
                log.warning("live consumer failed (%s); retrying in %.0fs", exc, delay)
                self.hub.ready = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # only for partitions added later
            client_id="tourpulse-api-live",
        )
        try:
            await consumer.start()
            self._consumer = consumer
            await self._seek_start(consumer)
            self.last_error = None
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
                for tp, records in batches.items():
                    for rec in records:
                        self.metrics.live_consumed.inc()
                        self.last_message_at = time.time()
                        message = to_live_message(tp.partition, rec.offset, rec.value)
                        if message is None:  # counted once here, skipped quietly on replay
                            self.metrics.live_invalid.inc()
                            log.warning("invalid live message at %s:%d skipped", tp, rec.offset)
                            self.hub.skip(tp.partition, rec.offset)
                        else:
                            self.hub.publish(message)
        finally:
            self._consumer = None
            await consumer.stop()

    async def _seek_start(self, consumer: AIOKafkaConsumer) -> None:
        """Wait for the partitions, then start where the hub left off or a bit before the end."""
        deadline = time.monotonic() + ASSIGN_TIMEOUT_S
        while not consumer.assignment():
            if time.monotonic() > deadline:
                raise KafkaError(f"topic {self.topic!r} has no partitions (not created yet?)")
            await asyncio.sleep(0.2)
        tps = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        start: Positions = {}
        for tp in tps:
            known = self.hub.positions.get(tp.partition)
            primed = max(begins[tp], ends[tp] - self.prime_messages)
            start[tp.partition] = max(begins[tp], known) if known is not None else primed
            consumer.seek(tp, start[tp.partition])
        self.hub.start_at(start)
        log.info("live feed on %s from %s", self.topic, start)


async def read_range(
    bootstrap: str, topic: str, start: Positions, stop: Positions
) -> AsyncGenerator[LiveMessage, None]:
    """Replay ``[start[p], stop[p])`` of each partition with a short-lived consumer.

    Used when a resuming client missed more than the in-memory ring holds. Each partition is
    read in order; partitions are interleaved as Kafka returns them (ids stay correct
    because they are per-partition positions).
    """
    wanted = {p: (s, stop[p]) for p, s in start.items() if p in stop and s < stop[p]}
    if not wanted:
        return
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id="tourpulse-api-replay",
    )
    try:
        await consumer.start()
        tps = {p: TopicPartition(topic, p) for p in wanted}
        consumer.assign(list(tps.values()))
        for p, (s, _) in wanted.items():
            consumer.seek(tps[p], s)
        remaining = set(wanted)
        while remaining:
            batches = await consumer.getmany(*(tps[p] for p in remaining), timeout_ms=1000)
            for tp, records in batches.items():
                end = wanted[tp.partition][1]
                for rec in records:
                    if rec.offset >= end:
                        break
                    message = to_live_message(tp.partition, rec.offset, rec.value)
                    if message is not None:
                        yield message
            for p in list(remaining):
                if await consumer.position(tps[p]) >= wanted[p][1]:
                    remaining.discard(p)
    finally:
        await consumer.stop()


async def earliest_offsets(bootstrap: str, topic: str, partitions: list[int]) -> Positions:
    """Oldest offsets Kafka still has (older ones were removed by retention)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in partitions]
        begins = await consumer.beginning_offsets(tps)
        return {tp.partition: off for tp, off in begins.items()}
    finally:
        await consumer.stop()
