"""The benchmark's feeder: one outbox transaction per link per tick, whatever its speed.

The links are built but never started (no broker): each link's ``submit_many`` is replaced
by a recorder, so the test sees exactly the transactions the outboxes would have made.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

from device_configs.loader import load_device_configs
from infra.bench.edge_fleet import TICK_S, EdgeFleet
from schemas.envelope import EventBase
from tests.support.bench_events import CONFIGS, midday_city_events


def _recording_fleet(
    tmp_path: Path,
) -> tuple[EdgeFleet, list[tuple[str, int]], Iterator[EventBase]]:
    sites = [f"fl-{s.id}" for s in load_device_configs(CONFIGS).sites]
    fleet = EdgeFleet(sites, "127.0.0.1", 1, tmp_path, boxes=4)
    calls: list[tuple[str, int]] = []
    for link in fleet.links:

        def record(events: Sequence[EventBase], name: str = link.identity.device) -> list[int]:
            calls.append((name, len(events)))
            return list(range(len(events)))

        link.submit_many = record  # type: ignore[method-assign]
    events = midday_city_events(tmp_path / "keys", "fl")
    return fleet, calls, events


def test_paced_feed_makes_one_transaction_per_link_per_tick(tmp_path: Path) -> None:
    fleet, calls, events = _recording_fleet(tmp_path)
    duration, rate = 1.0, 4000.0
    stats = fleet.feed(events, duration, rate)

    assert sum(n for _, n in calls) == stats.submitted
    assert stats.submitted >= rate * duration * 0.5  # a loaded machine may skip a tick
    ticks = duration / TICK_S
    for link in fleet.links:
        mine = [n for name, n in calls if name == link.identity.device]
        # At most one per tick (and a few for a late tick catching up). Going round again
        # at once after submitting gave hundreds of one- to three-event transactions.
        assert 0 < len(mine) <= ticks * 1.1 + 2, (link.identity.device, len(mine))
    assert stats.submitted / len(calls) >= 0.5 * rate * TICK_S / len(fleet.links)


def test_latency_samples_carry_the_tick_they_were_submitted_in(tmp_path: Path) -> None:
    fleet, _calls, events = _recording_fleet(tmp_path)
    stats = fleet.feed(events, 0.5, 2000.0)

    assert len(stats.samples) >= stats.submitted // fleet.sample_every
    assert len({sid for sid, _ in stats.samples}) == len(stats.samples)
    times = [t for _, t in stats.samples]
    assert times == sorted(times)
    assert stats.started <= times[0] and times[-1] <= stats.ended
    # One send time per tick: whole ticks of samples share it.
    per_tick = [len(list(g)) for _, g in itertools.groupby(times)]
    assert max(per_tick) > 1
