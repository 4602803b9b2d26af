"""Throttle live occupancy updates: at most one per site per interval, only on change.

The API fans these out to browsers over SSE, so a busy site must not produce one message
per batch; but the latest value must never be lost, so a change that arrives too soon is
kept pending and flushed by a timer once the interval has passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from schemas.stream_out import OccupancyUpdateV1


class LiveThrottle:
    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._sent: dict[str, tuple[int, float]] = {}
        self._pending: dict[str, OccupancyUpdateV1] = {}

    def offer(self, update: OccupancyUpdateV1) -> OccupancyUpdateV1 | None:
        """Return the update if it should be sent now; otherwise keep it (or drop a no-op)."""
        last = self._sent.get(update.site)
        if last is not None and last[0] == update.connected:
            self._pending.pop(update.site, None)  # back to what subscribers already have
            return None
        if last is not None and self._clock() - last[1] < self.interval:
            self._pending[update.site] = update
            return None
        return self._mark_sent(update)

    def due(self) -> list[OccupancyUpdateV1]:
        """Pending updates whose site's interval has elapsed (marked as sent)."""
        now = self._clock()
        ready = [u for s, u in self._pending.items() if now - self._sent[s][1] >= self.interval]
        return [self._mark_sent(u) for u in ready]

    def _mark_sent(self, update: OccupancyUpdateV1) -> OccupancyUpdateV1:
        self._sent[update.site] = (update.connected, self._clock())
        self._pending.pop(update.site, None)
        return update
