"""The flows worker's logic between Kafka and PostgreSQL, independent of the transport.

A batch is returned from :meth:`FlowsWorker.process` only once PostgreSQL has committed
it, so the stream runtime commits offsets after the data is safe. Live updates are sent after
the recompute commits: the tables are the truth, the feed is best effort (a crash between
commit and send loses one message, and the next change of that hour sends it again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from schemas.flows import FlowsHourlyV1, OdInflow
from stream.flows import metrics
from stream.flows.presence import publishable
from stream.flows.sink import FlowsConfig, FlowsSink, HourlyUpdate
from stream.storage.reconnect import RetryingSink
from stream.wifi.batch import session_events

log = logging.getLogger(__name__)

T = TypeVar("T")
Send = Callable[[bytes | None, bytes], Awaitable[None]]


class FlowsWorker:
    def __init__(self, database_url: str, config: FlowsConfig, send_update: Send) -> None:
        self.database_url = database_url
        self.config = config
        self._send = send_update
        self._db = RetryingSink(
            database_url, "tp-flows", lambda conn: FlowsSink(conn, config), metrics.DB_ERRORS
        )
        self.last_batch_at: datetime | None = None
        self.last_recompute_at: datetime | None = None

    async def process(self, values: Sequence[bytes]) -> None:
        # Bad input is counted, not dead-lettered: the occupancy worker reads the same topic
        # and already sends every bad record or batch element to the dead-letter topic once.
        events, rejected = session_events(values)
        metrics.EVENTS.labels("rejected").inc(len(rejected))
        if not events:
            return
        outcome = await self.with_db(lambda sink: sink.write(events))
        metrics.BATCHES.inc()
        metrics.EVENTS.labels("merged").inc(len(events))
        metrics.EVENTS.labels("too_late").inc(outcome.too_late)
        metrics.DB_SECONDS.labels("batch").observe(outcome.db_seconds)
        self.last_batch_at = datetime.now(UTC)

    async def recompute(self, refresh_open: bool = False) -> int:
        """Recompute dirty keys and publish what changed; return messages sent."""
        started = asyncio.get_running_loop().time()
        out = await self.with_db(lambda sink: sink.recompute(refresh_open))
        metrics.DB_SECONDS.labels("recompute").observe(asyncio.get_running_loop().time() - started)
        metrics.HOURS_RECOMPUTED.inc(out.hours)
        metrics.SKIPPED_FINAL.inc(out.skipped_final)
        self.last_recompute_at = datetime.now(UTC)
        for update in out.updates:
            msg = self.message(update)
            await self._send(update.site.encode(), msg.model_dump_json().encode())
        metrics.UPDATES.inc(len(out.updates))
        return len(out.updates)

    def message(self, u: HourlyUpdate) -> FlowsHourlyV1:
        """The live message of an hourly row; OD cells below k are left out."""
        shown = publishable(u.inflows, self.config.min_count)
        metrics.SUPPRESSED.inc(len(u.inflows) - len(shown))
        return FlowsHourlyV1(
            site=u.site,
            hour=u.hour,
            day=u.day,
            unique_visitors=u.unique_visitors,
            unique_visitors_stable=u.unique_visitors_stable,
            new_visitors=u.new_visitors,
            returning_visitors=u.returning_visitors,
            dwell_sessions=u.dwell_sessions,
            dwell_median_s=u.dwell_median_s,
            dwell_p90_s=u.dwell_p90_s,
            peak_connected=u.peak_connected,
            avg_connected=u.avg_connected,
            final=u.final,
            min_count=self.config.min_count,
            inflows=[OdInflow(origin=o, clients=n) for o, n in shown],
            emitted_at=datetime.now(UTC),
        )

    @property
    def db_ok(self) -> bool:
        return self._db.ok

    async def with_db(self, work: Callable[[FlowsSink], Awaitable[T]]) -> T:
        """Run ``work`` in the sink until it succeeds (never ack unstored events)."""
        return await self._db.run(work)

    async def close(self) -> None:
        await self._db.close()
