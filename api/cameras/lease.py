"""Shared PTZ control: one controller at a time, a queue behind it, operators override.

Pure logic with an injectable clock so the rules are testable without waiting. A lease
lasts ``ttl`` seconds and is renewed by its holder; when it lapses or is released, the
next in the queue gets it on their next request (the queue entry is kept for ``ttl`` so
a viewer who closed the page does not block everybody).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

LEASE_TTL_S = 60.0
#: Longest continuous control by one viewer (renewals stop extending it); operators exempt.
MAX_HOLD_S = 300.0
#: Longest queue; beyond it new viewers are refused instead of growing the table.
MAX_QUEUE = 50


@dataclass
class Lease:
    holder: str
    token: str
    expires: float
    operator: bool = False
    granted: float = 0.0


@dataclass
class Grant:
    """Outcome of a request: a lease, or the queue position (1 = next)."""

    lease: Lease | None
    position: int = 0
    holder: str | None = None


@dataclass
class PtzLeases:
    ttl: float = LEASE_TTL_S
    max_hold: float = MAX_HOLD_S
    max_queue: int = MAX_QUEUE
    clock: Callable[[], float] = time.monotonic
    current: Lease | None = None
    queue: dict[str, float] = field(default_factory=dict)  # viewer -> queued-until

    def _expire(self) -> None:
        now = self.clock()
        if self.current is not None and self.current.expires <= now:
            self.current = None
        self.queue = {v: until for v, until in self.queue.items() if until > now}

    def known(self, viewer: str) -> bool:
        """Whether ``viewer`` is an id this table handed out and still tracks."""
        self._expire()
        return viewer in self.queue or (self.current is not None and self.current.holder == viewer)

    def request(self, viewer: str, operator: bool = False) -> Grant:
        """Take the lease if free (or as operator), else join / stay in the queue. The holder
        asking again gets no lease (position 0): renewal is by token only, so knowing a
        viewer's id never yields its token. A full queue answers position -1."""
        self._expire()
        now = self.clock()
        cur = self.current
        if cur is not None and cur.holder == viewer and not operator:
            return Grant(None, 0, cur.holder)
        first_in_line = next(iter(self.queue), None)
        if operator or (cur is None and first_in_line in (None, viewer)):
            self.queue.pop(viewer, None)
            token = secrets.token_urlsafe(16)
            self.current = Lease(viewer, token, now + self.ttl, operator, granted=now)
            return Grant(self.current)
        if viewer not in self.queue and len(self.queue) >= self.max_queue:
            return Grant(None, -1, cur.holder if cur else None)
        self.queue[viewer] = now + self.ttl
        return Grant(None, list(self.queue).index(viewer) + 1, cur.holder if cur else None)

    def check(self, token: str | None) -> Lease | None:
        """The live lease this token belongs to (None if absent, wrong or lapsed)."""
        self._expire()
        cur = self.current
        if cur is None or token is None or not secrets.compare_digest(cur.token, token):
            return None
        return cur

    def renew(self, token: str) -> Lease | None:
        """Extend the lease, but a viewer's never past ``max_hold`` from its grant."""
        lease = self.check(token)
        if lease is not None:
            until = self.clock() + self.ttl
            if not lease.operator:
                until = min(until, lease.granted + self.max_hold)
            lease.expires = until
        return lease

    def release(self, token: str) -> bool:
        if self.check(token) is None:
            return False
        self.current = None
        return True
