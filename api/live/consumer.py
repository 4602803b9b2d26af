"""The one Kafka consumer of an API process, feeding the :class:`~api.live.hub.Hub`.

No consumer group: every API replica must see every message, and positions live in SSE
event ids rather than in committed offsets. At boot it re-reads the last few messages of
each partition so the snapshot (latest state per site) is known before the first client
arrives, then follows the topic. Failures (broker down, topic not created yet) are
logged, counted and retried with backoff; the API keeps serving history meanwhile.

A feed may follow several topics (the IOC feed: occupancy, fused occupancy, flows and
alert changes); each :class:`FeedTopic` says how to validate its messages and which SSE
event name they get, and partitions are numbered across topics (``PARTITION_STRIDE``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from api.live.hub import Hub, LiveMessage
from api.live.positions import PARTITION_STRIDE, LiveMetrics, Positions
from core.kafka_client import KafkaClientSettings, as_kafka
from core.kafka_lifecycle import start_shielded, stop_client
from core.tasks import cancel_and_wait
from schemas.stream_out import OccupancyUpdateV1

log = logging.getLogger(__name__)

#: Seconds between restarts of a failed consumer (doubling up to the max).
RETRY_MIN_S, RETRY_MAX_S = 1.0, 30.0
#: How long the consumer waits for the topic to exist and get its partitions assigned.
ASSIGN_TIMEOUT_S = 30.0
#: How often a feed missing some of its topics checks whether they exist now.
MISSING_TOPIC_RECHECK_S = 15.0
#: With no record for this long, ask the feed's partition leaders for their end offsets:
#: aiokafka retries a lost connection silently, so silence alone cannot tell a quiet city
#: from a dead broker.
LIVENESS_PROBE_S = 3.0
#: How long that probe may take before the feed is marked stale.
LIVENESS_TIMEOUT_S = 3.0

#: Validates a raw record: ``(site, compact JSON)`` or ``None`` if it is not valid.
Parser = Callable[[bytes], "tuple[str, str] | None"]


def parse_occupancy(raw: bytes) -> tuple[str, str] | None:
    try:
        update = OccupancyUpdateV1.model_validate_json(raw)
    except ValidationError:
        return None
    return update.site, update.model_dump_json()


@dataclass(frozen=True)
class FeedTopic:
    name: str  # Kafka topic (already namespaced)
    kind: str  # SSE event name of its messages
    parse: Parser
    keep_latest: bool = True  # states go into the snapshot; change events do not


def to_live_message(
    partition: int,
    offset: int,
    raw: bytes | None,
    topic: FeedTopic | None = None,
    timestamp_ms: int = 0,
) -> LiveMessage | None:
    """Validate a Kafka record (an OccupancyUpdateV1 unless ``topic`` says otherwise)."""
    if topic is None:
        topic = FeedTopic("", "occupancy", parse_occupancy)
    parsed = topic.parse(raw or b"")
    if parsed is None:
        return None
    site, data = parsed
    return LiveMessage(
        partition, offset, site, data, topic.kind, timestamp_ms / 1000, topic.keep_latest
    )


@dataclass
class LiveFeed:
    bootstrap: str | KafkaClientSettings
    topic: str
    hub: Hub
    metrics: LiveMetrics
    prime_messages: int
    #: Further topics after ``topic`` (whose messages are OccupancyUpdateV1 "occupancy").
    extra_topics: Sequence[FeedTopic] = ()
    last_error: str | None = None
    last_message_at: float | None = None
    #: Kafka replays (resumes beyond the ring) allowed at once; more get a snapshot.
    replay_slots: int = 2
    replays_running: int = field(default=0, init=False)
    _consumer: AIOKafkaConsumer | None = field(default=None, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    @property
    def topics(self) -> list[FeedTopic]:
        return [FeedTopic(self.topic, "occupancy", parse_occupancy), *self.extra_topics]

    def feed_partition(self, topic: str, partition: int) -> int:
        return self._index[topic] * PARTITION_STRIDE + partition

    def kafka_partition(self, feed_partition: int) -> TopicPartition:
        index, partition = divmod(feed_partition, PARTITION_STRIDE)
        return TopicPartition(self.topics[index].name, partition)

    def topic_of(self, feed_partition: int) -> FeedTopic:
        return self.topics[feed_partition // PARTITION_STRIDE]

    @property
    def _index(self) -> dict[str, int]:
        return {t.name: i for i, t in enumerate(self.topics)}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-kafka-consumer")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        self.hub.close()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and self.hub.ready

    async def probe(self) -> None:
        """Prove the feed's brokers answer right now (see :func:`_ping`)."""
        if self._consumer is None:
            raise KafkaError(self.last_error or "live consumer not started")
        await _ping(self._consumer)

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
                self.hub.set_stale(True, self.last_error)
                self.hub.ready = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def _consume(self) -> None:
        present = await self._present_topics()
        consumer = AIOKafkaConsumer(
            *sorted(present),
            **as_kafka(self.bootstrap).aiokafka(
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",  # only for partitions added later
                client_id="tourpulse-api-live",
            ),
        )
        try:
            await start_shielded(consumer)
            self._consumer = consumer
            complete = await self._seek_start(consumer, present)
            self.last_error = None
            recheck_at = time.monotonic() + MISSING_TOPIC_RECHECK_S
            topics = {t.name: t for t in self.topics}
            self.hub.set_stale(False, "connected to Kafka")
            heard_at = time.monotonic()
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
                if batches:
                    heard_at = time.monotonic()
                    self.hub.set_stale(False, "Kafka answers again")
                elif time.monotonic() - heard_at > LIVENESS_PROBE_S:
                    heard_at = await self._probe_liveness(consumer)
                for tp, records in batches.items():
                    topic = topics[tp.topic]
                    partition = self.feed_partition(tp.topic, tp.partition)
                    for rec in records:
                        self.metrics.live_consumed.inc()
                        self.last_message_at = time.time()
                        message = to_live_message(
                            partition, rec.offset, rec.value, topic, rec.timestamp
                        )
                        if message is None:  # counted once here, skipped quietly on replay
                            self.metrics.live_invalid.inc()
                            log.warning("invalid live message at %s:%d skipped", tp, rec.offset)
                            self.hub.skip(partition, rec.offset)
                        else:
                            self.hub.publish(message)
                if not complete and time.monotonic() > recheck_at:
                    recheck_at = time.monotonic() + MISSING_TOPIC_RECHECK_S
                    if set(topics) <= await consumer.topics():
                        # Restart to follow them too; the hub keeps its positions.
                        raise KafkaError("a missing live topic appeared; resubscribing")
        finally:
            self._consumer = None
            await stop_client(consumer)

    async def _probe_liveness(self, consumer: AIOKafkaConsumer) -> float:
        """Mark the hub stale or live by :func:`_ping`; returns when to probe next."""
        try:
            async with asyncio.timeout(LIVENESS_TIMEOUT_S):
                await _ping(consumer)
        except (KafkaError, TimeoutError, OSError) as exc:
            self.last_error = f"broker unreachable: {type(exc).__name__}: {exc}"
            self.hub.set_stale(True, self.last_error)
            return time.monotonic() - LIVENESS_PROBE_S + 1.0  # probe again in a second
        self.hub.set_stale(False, "Kafka answers again")
        return time.monotonic()

    async def _present_topics(self) -> set[str]:
        """The feed's main topic and those of its extra topics that exist.

        A city's cluster creates no topic because a client asks for it, and aiokafka's
        start with a missing topic subscribed waits for it, then fails: the whole feed,
        occupancy too, stayed down until the flows worker's first run made its topic
        (tests/integration/test_live_missing_topic.py). So a short-lived client asks what
        exists first (subscribing after the start instead cost a second per start in
        aiokafka's offset lookups); a missing extra topic is picked up by the recheck in
        :meth:`_consume`, a missing main topic fails the start (and is retried).
        """
        probe = AIOKafkaConsumer(
            **as_kafka(self.bootstrap).aiokafka(group_id=None, client_id="tourpulse-api-live")
        )
        try:
            await start_shielded(probe)
            existing = await probe.topics()
        finally:
            await stop_client(probe)
        return {self.topic} | {t.name for t in self.extra_topics if t.name in existing}

    async def _seek_start(self, consumer: AIOKafkaConsumer, wanted: set[str]) -> bool:
        """Wait for the partitions, then start where the hub left off or a bit before the end.

        Returns whether every topic of the feed was found; a feed missing some of its extra
        topics still starts (occupancy must not wait for, say, the flows worker's first run).
        """
        deadline = time.monotonic() + ASSIGN_TIMEOUT_S
        while {tp.topic for tp in consumer.assignment()} != wanted:
            if time.monotonic() > deadline:
                if self.topic not in {tp.topic for tp in consumer.assignment()}:
                    raise KafkaError(f"topic {self.topic!r} has no partitions (not created yet?)")
                missing = wanted - {tp.topic for tp in consumer.assignment()}
                log.warning("live feed starts without topics %s (not created yet)", missing)
                break
            await asyncio.sleep(0.2)
        tps = sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition))
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        start: Positions = {}
        for tp in tps:
            p = self.feed_partition(tp.topic, tp.partition)
            known = self.hub.positions.get(p)
            primed = max(begins[tp], ends[tp] - self.prime_messages)
            start[p] = max(begins[tp], known) if known is not None else primed
            consumer.seek(tp, start[p])
        self.hub.start_at(start)
        log.info("live feed on %s from %s", sorted(wanted), start)
        return {tp.topic for tp in tps} == {t.name for t in self.topics}


async def _ping(consumer: AIOKafkaConsumer) -> None:
    """Ask the leaders of the feed's partitions for their end offsets.

    Not ``consumer.topics()``: that fetches the metadata of every topic in the cluster, and
    with 4,117 topics (a shared cluster, or one that many test runs used) parsing it held
    the event loop for 100-150 ms and set off 100 ms full garbage collections, every 3 s
    per quiet feed. Alerts reaching the IOC in that window waited (bench alerts: p99 of the
    engine -> SSE leg 240 ms, every outlier on those stalls).
    """
    partitions = list(consumer.assignment())
    if partitions:
        await consumer.end_offsets(partitions)
    else:  # not assigned yet: the cluster's metadata is the only thing to ask
        await consumer.topics()


async def read_range(
    feed: LiveFeed, start: Positions, stop: Positions
) -> AsyncGenerator[LiveMessage, None]:
    """Replay ``[start[p], stop[p])`` of each feed partition with a short-lived consumer.

    Used when a resuming client missed more than the in-memory ring holds. Each partition is
    read in order; partitions are interleaved as Kafka returns them (ids stay correct
    because they are per-partition positions).
    """
    wanted = {p: (s, stop[p]) for p, s in start.items() if p in stop and s < stop[p]}
    if not wanted:
        return
    consumer = AIOKafkaConsumer(
        **as_kafka(feed.bootstrap).aiokafka(
            group_id=None, enable_auto_commit=False, client_id="tourpulse-api-replay"
        )
    )
    try:
        await start_shielded(consumer)
        tps = {p: feed.kafka_partition(p) for p in wanted}
        consumer.assign(list(tps.values()))
        for p, (s, _) in wanted.items():
            consumer.seek(tps[p], s)
        remaining = set(wanted)
        while remaining:
            batches = await consumer.getmany(*(tps[p] for p in remaining), timeout_ms=1000)
            for tp, records in batches.items():
                p = feed.feed_partition(tp.topic, tp.partition)
                end = wanted[p][1]
                for rec in records:
                    if rec.offset >= end:
                        break
                    message = to_live_message(
                        p, rec.offset, rec.value, feed.topic_of(p), rec.timestamp
                    )
                    if message is not None:
                        yield message
            for p in list(remaining):
                if await consumer.position(tps[p]) >= wanted[p][1]:
                    remaining.discard(p)
    finally:
        await stop_client(consumer)


async def earliest_offsets(feed: LiveFeed, partitions: list[int]) -> Positions:
    """Oldest offsets Kafka still has (older ones were removed by retention).

    Asked of the feed's own consumer when it runs: a resume then costs one short-lived
    consumer (the replay), not two."""
    if feed._consumer is not None:
        tps = {feed.kafka_partition(p): p for p in partitions}
        begins = await feed._consumer.beginning_offsets(list(tps))
        return {tps[tp]: off for tp, off in begins.items()}
    consumer = AIOKafkaConsumer(**as_kafka(feed.bootstrap).aiokafka(group_id=None))
    try:
        await start_shielded(consumer)
        tps = {feed.kafka_partition(p): p for p in partitions}
        begins = await consumer.beginning_offsets(list(tps))
        return {tps[tp]: off for tp, off in begins.items()}
    finally:
        await stop_client(consumer)
