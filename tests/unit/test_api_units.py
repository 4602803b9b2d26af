"""Pure unit tests of the API's building blocks (no services needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.config import ApiTuning
from api.history import bucket_origin, bucket_start, count_buckets, iso_duration, parse_step
from api.live.consumer import LiveFeed
from api.live.hub import END, Hub, LiveMessage
from api.live.positions import BadEventId, decode_positions, encode_positions
from api.live.stream import live_events
from api.metrics import ApiMetrics


def test_positions_round_trip() -> None:
    positions = {2: 0, 0: 124, 1: 46}
    text = encode_positions(positions)
    assert text == "0-124.1-46.2-0"
    assert decode_positions(text) == positions


@pytest.mark.parametrize("bad", ["", "abc", "0-1.", "0-1,1-2", "-1-3", "0-1-2", "0-" + "9" * 30])
def test_bad_event_ids_are_refused(bad: str) -> None:
    with pytest.raises(BadEventId):
        decode_positions(bad)


@pytest.mark.parametrize(
    ("text", "minutes", "canonical"),
    [
        ("1m", 1, "PT1M"),
        ("5m", 5, "PT5M"),
        ("15m", 15, "PT15M"),
        ("1h", 60, "PT1H"),
        ("1d", 1440, "P1D"),
        ("PT30M", 30, "PT30M"),
        ("pt90m", 90, "PT1H30M"),
        ("P1DT6H", 1800, "P1DT6H"),
        ("P1W", 7 * 1440, "P7D"),
    ],
)
def test_parse_step(text: str, minutes: int, canonical: str) -> None:
    step = parse_step(text)
    assert step == timedelta(minutes=minutes)
    assert iso_duration(step) == canonical


@pytest.mark.parametrize("bad", ["", "2m30", "P1M", "P1Y", "PT30S", "PT90S", "P", "PT", "1w"])
def test_parse_step_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="step"):
        parse_step(bad)


def test_day_buckets_start_at_local_midnight() -> None:
    origin = bucket_origin("Asia/Ho_Chi_Minh")
    moment = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)  # 03:00 on the 11th in HCMC (+07)
    start = bucket_start(moment, timedelta(days=1), origin)
    assert start == datetime(2026, 3, 10, 17, 0, tzinfo=UTC)
    assert count_buckets(moment, moment + timedelta(hours=22), timedelta(days=1), origin) == 2


def _msg(partition: int, offset: int, site: str = "ben-thanh-market") -> LiveMessage:
    return LiveMessage(partition, offset, site, f'{{"site":"{site}","n":{offset}}}')


def test_slow_client_is_dropped_without_blocking_others() -> None:
    metrics = ApiMetrics()
    hub = Hub(metrics, ring_size=100, client_queue=2)
    hub.start_at({0: 0})
    slow = hub.subscribe(None).client
    fast = hub.subscribe(None).client
    received = []
    for offset in range(5):
        hub.publish(_msg(0, offset))
        received.append(fast.queue.get_nowait())
    assert [m.offset for m in received] == list(range(5))
    assert slow.dropped and slow.queue.get_nowait() is END
    assert hub.client_count == 1
    assert metrics.sse_dropped._value.get() == 1


def test_hub_ignores_replays_and_tracks_ring_floor() -> None:
    hub = Hub(ApiMetrics(), ring_size=2, client_queue=10)
    hub.start_at({0: 5, 1: 0})
    assert hub.publish(_msg(0, 5))
    assert not hub.publish(_msg(0, 5))  # a restarted consumer re-reading: not twice
    hub.publish(_msg(1, 0))
    hub.publish(_msg(1, 1))  # evicts 0:5
    assert hub.ring_floor == {0: 6, 1: 0}
    assert hub.positions == {0: 6, 1: 2}


async def _take(agen: object, n: int) -> list[object]:
    out = []
    async for ev in agen:  # type: ignore[attr-defined]
        if getattr(ev, "event", None) == "occupancy":
            out.append(ev)
            if len(out) == n:
                break
    return out


async def test_resume_from_ring_sends_exactly_the_missed_ones() -> None:
    """Unit-level check of the id arithmetic (the Kafka-backed path is tested end to end)."""
    metrics = ApiMetrics()
    hub = Hub(metrics, ring_size=100, client_queue=100)
    feed = LiveFeed("127.0.0.1:1", "unused", hub, metrics, prime_messages=0)
    hub.start_at({0: 0, 1: 0})
    for offset in range(3):
        hub.publish(_msg(0, offset, "a"))
        hub.publish(_msg(1, offset, "b"))
    first = live_events(feed, ApiTuning(), None, None)
    snapshot = await _take(first, 2)
    assert [ev.id for ev in snapshot] == ["0-3.1-3", "0-3.1-3"]  # type: ignore[attr-defined]
    hub.publish(_msg(0, 3, "a"))
    (seen,) = await _take(first, 1)
    assert seen.id == "0-4.1-3"  # type: ignore[attr-defined]
    await first.aclose()
    hub.publish(_msg(1, 3, "b"))
    hub.publish(_msg(0, 4, "a"))
    resumed = live_events(feed, ApiTuning(), None, "0-4.1-3")
    events = await _take(resumed, 2)
    assert [ev.id for ev in events] == ["0-4.1-4", "0-5.1-4"]  # type: ignore[attr-defined]
    hub.publish(_msg(1, 4, "b"))
    (live,) = await _take(resumed, 1)
    assert live.id == "0-5.1-5"  # type: ignore[attr-defined]
    await resumed.aclose()
    assert hub.client_count == 0
    assert metrics.live_resumes.labels("ring")._value.get() == 1


async def test_resume_beyond_the_replay_limit_sends_a_snapshot() -> None:
    metrics = ApiMetrics()
    hub = Hub(metrics, ring_size=1, client_queue=100)
    feed = LiveFeed("127.0.0.1:1", "unused", hub, metrics, prime_messages=0)
    hub.start_at({0: 0})
    for offset, site in enumerate(["a", "b", "a", "b"]):
        hub.publish(_msg(0, offset, site))
    resumed = live_events(feed, ApiTuning(live_replay_max=2), None, "0-1")
    events = await _take(resumed, 2)
    await resumed.aclose()
    assert [(ev.id, ev.raw_data) for ev in events] == [  # type: ignore[attr-defined]
        ("0-4", _msg(0, 2, "a").data),
        ("0-4", _msg(0, 3, "b").data),
    ]
    assert metrics.live_resumes.labels("snapshot")._value.get() == 1


async def test_bad_last_event_id_gets_a_snapshot() -> None:
    metrics = ApiMetrics()
    hub = Hub(metrics, ring_size=10, client_queue=10)
    feed = LiveFeed("127.0.0.1:1", "unused", hub, metrics, prime_messages=0)
    hub.start_at({0: 0})
    hub.publish(_msg(0, 0, "a"))
    stream = live_events(feed, ApiTuning(), None, "garbage")
    (event,) = await _take(stream, 1)
    await stream.aclose()
    assert event.id == "0-1"  # type: ignore[attr-defined]
    assert metrics.live_resumes.labels("invalid_id")._value.get() == 1
