"""From raw Kafka values to a committed batch: decode, dead-letter, write (retrying), publish.

Independent of Kafka (it gets async ``send`` callables), so the same code runs in the
worker and in tests. A batch is only returned from :meth:`process` once PostgreSQL has
committed it: the stream runtime commits the Kafka offsets after that, never before.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import psycopg

from schemas.codec import DeadLetterReason
from schemas.stream_out import OccupancyUpdateV1
from stream.deadletter import dead_letter
from stream.storage.partitions import ensure_event_partitions
from stream.storage.reconnect import RetryingSink
from stream.wifi import metrics
from stream.wifi.batch import session_events
from stream.wifi.live import LiveThrottle
from stream.wifi.sink import BatchResult, OccupancySink

log = logging.getLogger(__name__)

T = TypeVar("T")
Send = Callable[[bytes | None, bytes], Awaitable[None]]


@dataclass(frozen=True)
class ProcessorConfig:
    database_url: str
    source_topic: str
    session_timeout: timedelta = timedelta(minutes=15)
    live_interval: float = 1.0
    idle_horizon: timedelta = timedelta(days=1)
    raw_writer: str = "unnest"
    rollup_interval: float = 5.0


class OccupancyProcessor:
    def __init__(self, config: ProcessorConfig, send_live: Send, send_dead: Send) -> None:
        self.config = config
        self._send_live = send_live
        self._send_dead = send_dead
        self._db = RetryingSink(
            config.database_url,
            "tp-worker",
            lambda conn: OccupancySink(
                conn,
                config.session_timeout,
                raw_writer=config.raw_writer,
                rollup_interval=config.rollup_interval,
                live_interval=config.live_interval,
            ),
            metrics.DB_ERRORS,
        )
        self.throttle = LiveThrottle(config.live_interval)
        self.last_batch_at: datetime | None = None

    async def process(self, values: Sequence[bytes]) -> BatchResult:
        """Store one batch exactly once; retries until PostgreSQL accepts it."""
        events, rejected = session_events(values)
        for bad in rejected:  # each bad record or batch element on its own
            await self._reject(bad.error.reason, bad.error.detail, bad.raw)
        metrics.BATCH_SIZE.observe(len(events) + len(rejected))
        result = await self._with_db(lambda sink: sink.write(events))
        metrics.BATCHES.inc()
        metrics.EVENTS.labels("stored").inc(result.inserted)
        metrics.EVENTS.labels("duplicate").inc(result.duplicates)
        metrics.MINUTES_RECOMPUTED.inc(result.minutes_recomputed)
        metrics.DB_WRITE_SECONDS.observe(result.db_seconds)
        self.last_batch_at = datetime.now(UTC)
        log.debug(
            "batch of %d: %d stored, %d duplicates, %d minutes recomputed in %.3fs",
            len(values),
            result.inserted,
            result.duplicates,
            result.minutes_recomputed,
            result.db_seconds,
        )
        for update in result.live:
            if self.throttle.offer(update):
                await self._publish(update)
        return result

    async def flush_live(self) -> None:
        """Recompute rollups queued by past batches once due, then send live updates that
        were held back by the throttle (a quiet stream must not leave either behind)."""
        minutes, live = await self._with_db(lambda sink: sink.flush_due())
        metrics.MINUTES_RECOMPUTED.inc(minutes)
        for update in live:
            if self.throttle.offer(update):
                await self._publish(update)
        for update in self.throttle.due():
            await self._publish(update)

    async def close_lagging_sites(self) -> int:
        n = await self._with_db(lambda sink: sink.close_lagging_sites(self.config.idle_horizon))
        metrics.MINUTES_RECOMPUTED.inc(n)
        return n

    async def ensure_partitions(self) -> int:
        return await self._with_db(lambda sink: ensure_event_partitions(sink.conn))

    async def close(self) -> None:
        """Recompute this worker's queued minutes (best effort: any worker's sweep would
        do it later) and disconnect."""
        if self._db.current is not None:
            try:
                await self._db.current.flush()
            except psycopg.Error as exc:
                log.warning("final rollup flush failed (%s); the next sweep redoes it", exc)
        await self._db.close()

    async def _reject(self, reason: DeadLetterReason, detail: str, raw: bytes) -> None:
        record = dead_letter(reason, detail, f"kafka:{self.config.source_topic}", raw, _now())
        await self._send_dead(record.key, record.value)
        metrics.EVENTS.labels("rejected").inc()
        metrics.REJECTED.labels(reason.value).inc()

    async def _publish(self, update: OccupancyUpdateV1) -> None:
        msg = update.model_copy(update={"emitted_at": _now()})
        await self._send_live(update.site.encode(), msg.model_dump_json().encode())
        metrics.LIVE_UPDATES.inc()

    @property
    def db_ok(self) -> bool:
        return self._db.ok

    async def _with_db(self, work: Callable[[OccupancySink], Awaitable[T]]) -> T:
        """Run ``work`` in the sink until it succeeds (see :class:`RetryingSink`)."""
        return await self._db.run(work)


def _now() -> datetime:
    return datetime.now(UTC)
