"""Garbage-collector settings for the long-running event processes: the gateway, the
workers, the Wi-Fi edge agent and the simulator.

Why: every event they decode allocates a handful of container objects (parsed JSON, a
pydantic model and its nested data), so CPython's cyclic collector, tuned for programs
that allocate far less, ran a young collection every 700 allocations and a full one over
the whole heap (every module, pydantic schema and client library loaded at start-up)
every hundred of those. On a worker's per-batch work (decode, dedup, rows, session
summary; the worker's imports loaded, same events, runs alternated) that was 15-16 µs
per event, and 11-12 µs with the start-up heap frozen out of the collector and young
collections every 20,000 allocations. Reference counting still frees almost everything
at once; only garbage in reference cycles waits a little longer. The edge side allocates
the same way (events built, serialised and queued): the simulator making and serialising
events took 21.7-22.5 µs per event with CPython's defaults and 17.8-18.4 with these.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Allocations between young-generation collections (CPython's default: 700).
YOUNG_THRESHOLD = 20_000


def tune_for_streaming() -> None:
    """Collect start-up garbage, freeze what is left (imports, configuration) out of every
    later collection, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


@contextmanager
def tuned_for_streaming() -> Iterator[None]:
    """:func:`tune_for_streaming` for a block, for a process that does other work after it
    (the benchmark runner): the heap is unfrozen and the thresholds restored on exit."""
    before = gc.get_threshold()
    tune_for_streaming()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
