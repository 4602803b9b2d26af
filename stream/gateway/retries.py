"""Records whose Kafka delivery failed, waiting to be produced again.

Every record waits the same delay, so due times follow arrival order: a FIFO, not a heap.
Thread-safe: librdkafka's delivery callbacks add (on the poll thread or in ``produce``), the
poll loop and a draining stop take.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class RetryQueue(Generic[T]):
    def __init__(self, delay_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.delay_s = delay_s
        self._clock = clock
        self._lock = threading.Lock()
        self._items: deque[tuple[float, T]] = deque()

    def add(self, item: T) -> None:
        with self._lock:
            self._items.append((self._clock() + self.delay_s, item))

    def due(self, force: bool = False) -> list[T]:
        """Take the items whose delay is over (every item with ``force``), oldest first."""
        now = self._clock()
        out: list[T] = []
        with self._lock:
            while self._items and (force or self._items[0][0] <= now):
                out.append(self._items.popleft()[1])
        return out

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
