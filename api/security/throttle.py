"""Login throttling: a token bucket per client IP and an exponential back-off per username.

Argon2id makes each guess expensive for *us* (64 MiB, tens of ms), so unthrottled logins
are both a password-guessing oracle and a memory DoS. The IP bucket bounds the sustained
rate any one address can make us hash (``rate_per_s``, with a small ``burst`` for typos);
the per-user back-off slows a distributed guess against one account without letting a
third party lock the owner out for long (the delay is capped, and a success resets it).
Both tables are bounded LRU maps, so a scan of random usernames cannot grow memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

Clock = Callable[[], float]
V = TypeVar("V")


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class _Failures:
    count: int
    blocked_until: float


@dataclass
class LoginThrottle:
    """Decides whether a login attempt may be checked at all, and records outcomes."""

    rate_per_s: float = 0.5
    burst: int = 5
    free_failures: int = 3
    max_backoff_s: float = 900.0
    max_entries: int = 100_000
    clock: Clock = time.monotonic
    _ips: OrderedDict[str, _Bucket] = field(default_factory=OrderedDict, init=False)
    _users: OrderedDict[str, _Failures] = field(default_factory=OrderedDict, init=False)

    def retry_after(self, ip: str, username: str) -> float:
        """0 if the attempt may proceed (and it then costs one IP token), else the seconds
        to wait. A refused attempt costs nothing, so waiting is what lets a client in."""
        now = self.clock()
        failures = self._users.get(username)
        if failures is not None and failures.blocked_until > now:
            return failures.blocked_until - now
        bucket = self._ips.get(ip)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
            _put(self._ips, ip, bucket, self.max_entries)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate_per_s)
        bucket.at = now
        self._ips.move_to_end(ip)
        if bucket.tokens < 1.0:
            return (1.0 - bucket.tokens) / self.rate_per_s
        bucket.tokens -= 1.0
        return 0.0

    def failed(self, username: str) -> None:
        """A wrong password for ``username``: past ``free_failures`` it waits 1, 2, 4 ... s."""
        failures = self._users.get(username) or _Failures(0, 0.0)
        failures.count += 1
        extra = failures.count - self.free_failures
        if extra > 0:
            delay = min(self.max_backoff_s, 2.0 ** min(extra - 1, 30))
            failures.blocked_until = self.clock() + delay
        _put(self._users, username, failures, self.max_entries)

    def succeeded(self, username: str) -> None:
        self._users.pop(username, None)


def _put(table: OrderedDict[str, V], key: str, value: V, limit: int) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > limit:
        table.popitem(last=False)
