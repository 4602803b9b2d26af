"""Outbox rows the broker acknowledged, deleted from the outbox together.

Why not at once: a PUBACK arrives every few milliseconds under load, and a delete commit per
loop turn rewrote the same head pages of the outbox each time. Held for at most
``every_s`` (or ``most`` rows), a crash in between only re-sends those rows, which
consumers deduplicate by event id: at-least-once is kept, nothing acknowledged is lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from edge.link.metrics import PUBLISHED
from edge.link.outbox import Outbox


class PendingAcks:
    """Not thread-safe: owned by the link thread."""

    def __init__(
        self,
        outbox: Outbox,
        every_s: float,
        most: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self.every_s = every_s
        self.most = most
        self._clock = clock
        self._seqs: list[int] = []
        self._since = 0.0  # when the oldest held row was acknowledged
        #: Rows deleted because the broker acknowledged them (since this process started).
        self.deleted_total = 0

    def add(self, seqs: Iterable[int]) -> None:
        if not self._seqs:
            self._since = self._clock()
        self._seqs.extend(seqs)

    def flush(self, force: bool = False) -> int:
        """Delete the held rows if due (``force``: now); returns how many were deleted."""
        if not self._seqs:
            return 0
        if not force and len(self._seqs) < self.most and self._clock() - self._since < self.every_s:
            return 0
        deleted = self.outbox.ack(self._seqs)
        self._seqs.clear()
        self.deleted_total += deleted
        PUBLISHED.inc(deleted)
        return deleted
