"""Write-behind for landings: the splash page never waits for the database.

A burst of phones joining (a tour bus, a concert ending) would otherwise make every splash
request queue for a pooled connection. Landings (visit + promos shown) are buffered and
written every ``interval`` in one statement; the accept step does not depend on the buffer
(it re-creates the visit from the sealed cookie if needed), so another worker process or a
crash loses at most the impressions of the last ``interval``, and those are counted.
Each landing keeps the time it was served, so a data-subject erasure that completes while
it is still buffered (in any process) also covers it: ``PortalStore.land_many`` skips it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge

from api.portal.store import Landing, PortalStore, Visit

log = logging.getLogger(__name__)
WRITE_ERRORS = Counter("tp_portal_landing_write_errors_total", "Failed landing batch writes")
DROPPED = Counter("tp_portal_landings_dropped_total", "Landings lost (buffer full or shutdown)")
PENDING = Gauge("tp_portal_landings_pending", "Landings waiting to be written")
#: Beyond this many unwritten landings the database is down; stop growing memory.
MAX_PENDING = 50_000


class LandingWriter:
    def __init__(self, store: PortalStore, interval: float = 0.05, max_batch: int = 1000):
        self.store = store
        self.interval = interval
        self.max_batch = max_batch
        self._pending: list[Landing] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="portal-landing-writer")

    def add(self, ps: str, visit: Visit, shown: Sequence[tuple[str, str]]) -> None:
        if len(self._pending) >= MAX_PENDING:
            DROPPED.inc()
            return
        self._pending.append((ps, visit, shown, datetime.now(UTC)))
        PENDING.set(len(self._pending))
        self._wake.set()

    async def flush(self) -> None:
        """Write everything buffered so far (retrying on the next tick if the DB fails)."""
        async with self._lock:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            if not batch:
                return
            try:
                await self.store.land_many(batch)
            except Exception:
                WRITE_ERRORS.inc()
                log.exception("writing %d landings failed; will retry", len(batch))
                self._pending[:0] = batch
                raise
            finally:
                PENDING.set(len(self._pending))

    async def drain(self) -> None:
        """Write every landing buffered so far, batch after batch."""
        while self._pending:
            await self.flush()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.interval)
            try:
                await self.drain()
            except Exception:  # already logged and counted; back off, keep the buffer
                await asyncio.sleep(1.0)
                self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            while self._pending:
                await self.flush()
        except Exception:
            DROPPED.inc(len(self._pending))
            log.error("%d landings not written at shutdown", len(self._pending))
