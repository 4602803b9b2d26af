"""A bounded gate around Argon2 work: at most ``slots`` hashes at once, a short queue.

Each Argon2id verification allocates 64 MiB, and ``asyncio.to_thread`` alone would run as
many as the default executor has threads (32 on a big box: 2 GiB). The gate caps memory
at ``slots * 64 MiB`` and refuses (503, retry) instead of queueing without end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class HashingBusy(RuntimeError):
    """Too many logins waiting for a hashing slot: ask the client to retry."""


class HashGate:
    def __init__(self, slots: int = 2, max_waiting: int = 32) -> None:
        self.slots = slots
        self.max_waiting = max_waiting
        self._semaphore = asyncio.Semaphore(slots)
        self._waiting = 0
        self.running = 0
        self.peak = 0

    async def run(self, func: Callable[..., T], *args: object) -> T:
        """``func(*args)`` in a worker thread once a slot is free."""
        if self._waiting >= self.max_waiting:
            raise HashingBusy("too many logins in progress; retry in a few seconds")
        self._waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self._waiting -= 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            return await asyncio.to_thread(func, *args)
        finally:
            self.running -= 1
            self._semaphore.release()
