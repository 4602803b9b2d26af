"""The benchmark's replay of events made ahead: the same events, in the same order, whatever
mix of recorded and live ones a phase asks for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from infra.bench.replay import BLOCK, Replay
from schemas.codec import encode_event
from schemas.envelope import EventBase
from tests.support.bench_events import midday_city_events


def _take(events: Iterator[EventBase], n: int) -> list[bytes]:
    return [encode_event(next(events)) for _ in range(n)]


def test_replay_gives_the_simulators_events_in_order_across_recordings(tmp_path: Path) -> None:
    n = 3 * BLOCK + 417
    direct = _take(midday_city_events(tmp_path / "keys", "rp"), n)
    replay = Replay(midday_city_events(tmp_path / "keys", "rp"))  # same keys: same events

    got = _take(replay, 10)  # live: nothing recorded yet
    replay.record_ahead(BLOCK + 5)  # a block and a part of one
    got += _take(replay, 700)  # stops inside the first block
    replay.record_ahead(2 * BLOCK)  # tops up behind the rest of the first recording
    got += _take(replay, 2 * BLOCK)
    got += _take(replay, n - len(got))  # the recording runs out: live again

    assert got == direct
    # Recorded: 1,005, then 1,695 to have 2,000 waiting; all 2,700 were replayed.
    assert replay.live == n - (700 + 2 * BLOCK)


def test_record_ahead_counts_what_is_still_waiting(tmp_path: Path) -> None:
    replay = Replay(midday_city_events(tmp_path / "keys", "rp"))
    replay.record_ahead(2 * BLOCK)
    _take(replay, BLOCK + 1)
    replay.record_ahead(2 * BLOCK)  # makes only what was replayed since
    _take(replay, 2 * BLOCK)

    assert replay.live == 0
    next(replay)
    assert replay.live == 1
