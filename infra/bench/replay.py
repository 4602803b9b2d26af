"""Events made before a measured phase and replayed during it, so the source stays off the cores.

A load generator on the machine it loads takes CPU from the system under test; the usual
cure, a second machine, is not available here (2 cores for everything). The simulator costs
17-23 µs of CPU per event made, a sixth of the whole pipeline's cost per event, so a
benchmark that makes its events during the measurement reports the simulator's speed as
much as the pipeline's. :class:`Replay` makes them beforehand, like a recorded day played
back: blocks of :data:`BLOCK` events are pickled (about 285 bytes per event, a tenth of the
live objects, so millions fit) and unpickled one block at a time as the feeder asks,
about 3.6 µs per event. The events are the same objects, field for field, in the same
order, so everything downstream (the edge link encoding them, the outbox, the rows) does the
same work as before.

When the recording runs out, the events come from the simulator again, counted in
:attr:`Replay.live`, so a phase that outruns its recording is slower, never short of events.
The pickles are this process's own, never read from outside.
"""

from __future__ import annotations

import pickle
import time
from collections import deque
from collections.abc import Callable, Iterator

from schemas.envelope import EventBase

BLOCK = 1000  # events per pickled block: one unpickle per block keeps the per-event cost low


class Replay(Iterator[EventBase]):
    """An iterator over ``source``'s events that replays what :meth:`record_ahead` made first."""

    def __init__(self, source: Iterator[EventBase]) -> None:
        self._source = source
        self._blocks: deque[bytes] = deque()
        self._block: Iterator[EventBase] = iter(())
        self._ahead = 0  # recorded, not yet replayed
        self.live = 0  # events made on demand because the recording had run out

    def record_ahead(self, n: int, progress: Callable[[int, float], None] | None = None) -> None:
        """Make the source's next events now, until ``n`` wait to be replayed."""
        t0 = next_progress = time.monotonic()
        made = 0
        while self._ahead < n:
            block = [next(self._source) for _ in range(min(BLOCK, n - self._ahead))]
            self._blocks.append(pickle.dumps(block, protocol=pickle.HIGHEST_PROTOCOL))
            self._ahead += len(block)
            made += len(block)
            if progress is not None and (now := time.monotonic()) >= next_progress:
                progress(made, now - t0)
                next_progress = now + 10.0

    def __next__(self) -> EventBase:
        event = next(self._block, None)
        if event is None and self._blocks:
            self._block = iter(pickle.loads(self._blocks.popleft()))
            event = next(self._block)
        if event is not None:
            self._ahead -= 1
            return event
        self.live += 1
        return next(self._source)
