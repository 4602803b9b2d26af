"""Pure logic of the occupancy worker: minute invalidation, live throttling."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from schemas.stream_out import OccupancyUpdateV1
from stream.wifi.live import LiveThrottle
from stream.wifi.minutes import SessionChange, WindowChange, minutes_to_recompute

T = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
M = timedelta(minutes=1)


def test_new_session_invalidates_its_span_clipped_to_the_window() -> None:
    change = SessionChange("a", None, None, T + timedelta(seconds=30), T + 10 * M)
    window = WindowChange("a", T, T + 3 * M, T, T + 3 * M)
    assert minutes_to_recompute([change], [window]) == [("a", T + k * M) for k in range(4)]


def test_moved_end_invalidates_only_between_old_and_new_end() -> None:
    change = SessionChange("a", T, T + 9 * M, T, T + 4 * M + timedelta(seconds=5))
    window = WindowChange("a", T, T + 20 * M, T, T + 20 * M)
    assert minutes_to_recompute([change], [window]) == [("a", T + k * M) for k in range(4, 10)]


def test_window_growth_adds_new_minutes_on_both_sides() -> None:
    window = WindowChange("a", T + 5 * M, T + 6 * M, T + 3 * M, T + 8 * M)
    got = minutes_to_recompute([], [window])
    assert got == [("a", T + k * M) for k in (3, 4, 7, 8)]


def test_throttle_sends_first_holds_fast_changes_and_drops_no_ops() -> None:
    now = [0.0]
    throttle = LiveThrottle(1.0, clock=lambda: now[0])
    up = lambda n: OccupancyUpdateV1(site="s", connected=n, as_of=T, emitted_at=T)  # noqa: E731
    assert throttle.offer(up(3)) == up(3)
    now[0] = 0.3
    assert throttle.offer(up(4)) is None  # too soon: pending
    assert throttle.due() == []
    now[0] = 1.1
    assert throttle.due() == [up(4)]
    assert throttle.offer(up(4)) is None  # unchanged: nothing to send
    now[0] = 1.5
    assert throttle.offer(up(5)) is None
    assert throttle.offer(up(4)) is None  # back to the sent value: pending dropped
    now[0] = 3.0
    assert throttle.due() == []


def test_minutes_match_every_span_expanded_on_its_own() -> None:
    """Merged spans list exactly the minutes that expanding each span alone would, once:
    overlapping, touching, disjoint-within-one-minute and unchanged sessions included."""
    rng = random.Random(7)
    sec = timedelta(seconds=1)
    for _ in range(200):
        changes = []
        for _ in range(rng.randrange(0, 40)):
            site = rng.choice("ab")
            end = T + rng.randrange(0, 1200) * sec
            start = end - rng.randrange(0, 900) * sec
            if rng.random() < 0.3:
                changes.append(SessionChange(site, None, None, start, end))
            else:
                old_end = end - rng.choice([0, 0, 5, 300]) * sec
                old_start = start + rng.choice([0, 0, 40]) * sec
                changes.append(SessionChange(site, old_start, old_end, start, end))
        first, through = T + rng.randrange(0, 5) * M, T + rng.randrange(5, 25) * M
        windows = [WindowChange("a", first, through, first, through)]
        expected: set[tuple[str, datetime]] = set()
        for c in changes:
            pairs = (
                [(c.new_start, c.new_end)]
                if c.old_start is None
                else [(c.old_start, c.new_start), (c.old_end, c.new_end)]
            )
            for x, y in pairs:
                if c.old_start is not None and x == y:
                    continue
                lo, hi = min(x, y).replace(second=0), max(x, y).replace(second=0)
                m = lo
                while m <= hi:
                    if c.site == "a" and first <= m <= through:
                        expected.add((c.site, m))
                    m += M
        assert minutes_to_recompute(changes, windows) == sorted(expected)
