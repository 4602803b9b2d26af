"""The simulator's city events as the benchmark tests use them: a fixed hour, a short warm-up.

11:00 in Ho Chi Minh City, when every site box's sites are open. Started at the wall clock,
a CI run at 18:15 there fed no event to one of the four links within its second (the first
4,000 events came from three links' sites), and a feeder test failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from infra.bench.edge_fleet import city_events
from schemas.envelope import EventBase

CONFIGS = Path(__file__).resolve().parents[2] / "device_configs" / "hcmc"
MIDDAY = datetime(2026, 3, 4, 4, 0, tzinfo=UTC)


def midday_city_events(keys: Path, ns: str) -> Iterator[EventBase]:
    """Same keys directory, same ``ns``: the same events, in the same order."""
    return city_events(CONFIGS, keys, ns, warmup=timedelta(minutes=10), start=MIDDAY)
