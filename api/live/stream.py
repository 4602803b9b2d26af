"""One SSE client's stream: snapshot or resume, then live, with Kafka positions as ids.

Every event's id is the client's position vector *after* that event. Messages below the
client's position are skipped wherever they come from (ring, Kafka replay, live queue),
which is what makes resume exactly-once for the client: nothing missed, nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

from aiokafka.errors import KafkaError
from fastapi.sse import ServerSentEvent

from api.config import ApiTuning
from api.live.consumer import LiveFeed, earliest_offsets, read_range
from api.live.hub import END, STATUS_PARTITION, LiveMessage, Subscription
from api.live.positions import BadEventId, Positions, decode_positions, encode_positions

log = logging.getLogger(__name__)

#: Something to send every few seconds besides the data (the IOC feed's freshness event).
Ticker = Callable[[str | None], ServerSentEvent]
#: Longest a resume may spend replaying from Kafka before falling back to a snapshot.
REPLAY_TIMEOUT_S = 30.0


def _status_event(message: LiveMessage) -> ServerSentEvent:
    """No id: a status is not a Kafka position and must not move the client's resume point."""
    return ServerSentEvent(event=message.kind, raw_data=message.data)


def _event(message: LiveMessage, sent: Positions) -> ServerSentEvent:
    return ServerSentEvent(event=message.kind, id=encode_positions(sent), raw_data=message.data)


async def live_events(
    feed: LiveFeed,
    tuning: ApiTuning,
    site: str | None,
    last_event_id: str | None,
    ticker: Ticker | None = None,
    tick_s: float = 5.0,
    replay_max: int | None = None,
) -> AsyncGenerator[ServerSentEvent, None]:
    """Yield the events of one client until it disconnects or is dropped as too slow.

    ``replay_max`` bounds how many missed messages this client may have re-read from
    Kafka (default ``tuning.live_replay_max``; anonymous clients get a smaller bound).

    With a ``ticker``, its event (no id, so resume positions are untouched) goes out
    after the snapshot and then every ``tick_s`` seconds, busy or idle.
    """
    sub = feed.hub.subscribe(site)
    try:
        yield ServerSentEvent(retry=tuning.sse_retry_ms, comment="tourpulse live occupancy")
        resume = _parse_resume(feed, last_event_id)
        missed: list[LiveMessage] | None = None
        if resume is not None:
            sent = {p: resume.get(p, o) for p, o in sub.positions.items()}
            missed = await _missed(
                feed, tuning.live_replay_max if replay_max is None else replay_max, sub, sent
            )
        if missed is None:  # fresh client, or a resume that is no longer possible
            sent = dict(sub.positions)
            for message in sub.latest:
                yield _event(message, sent)
        else:
            for message in missed:
                if message.offset >= sent.get(message.partition, 0):
                    sent[message.partition] = message.offset + 1
                    yield _event(message, sent)
        if (status := feed.hub.status) is not None:  # what came before is of unknown age
            yield _status_event(status)
        next_tick = time.monotonic()
        while True:
            if ticker is not None and time.monotonic() >= next_tick:
                next_tick = time.monotonic() + tick_s
                yield ticker(site)
            try:
                async with asyncio.timeout(
                    None if ticker is None else max(0.0, next_tick - time.monotonic())
                ):
                    queued = await sub.client.queue.get()
            except TimeoutError:
                continue
            if queued is END:
                return
            if queued.partition == STATUS_PARTITION:
                yield _status_event(queued)
                continue
            if queued.offset < sent.get(queued.partition, 0):
                continue
            sent[queued.partition] = queued.offset + 1
            yield _event(queued, sent)
    finally:
        feed.hub.unsubscribe(sub.client)


def _parse_resume(feed: LiveFeed, last_event_id: str | None) -> Positions | None:
    if not last_event_id:
        return None
    try:
        return decode_positions(last_event_id)
    except BadEventId as exc:
        feed.metrics.live_resumes.labels("invalid_id").inc()
        log.warning("ignoring Last-Event-ID, sending a snapshot instead: %s", exc)
        return None


async def _missed(
    feed: LiveFeed, replay_max: int, sub: Subscription, sent: Positions
) -> list[LiveMessage] | None:
    """Messages between the client's position and the hub's at subscribe time.

    From the ring when it still covers the gap, else replayed from Kafka. ``None`` when the
    gap is too large or already deleted by retention: the caller then sends the latest state
    per site, which is a correct view because updates are states, not deltas.
    """
    metrics = feed.metrics.live_resumes
    gap = {p: sent[p] for p, end in sub.positions.items() if sent[p] < end}
    if not gap:
        metrics.labels("none").inc()
        return []
    site = sub.client.site
    if all(start >= sub.ring_floor.get(p, sub.positions[p]) for p, start in gap.items()):
        metrics.labels("ring").inc()
        return [m for m in sub.ring if site is None or m.site == site]
    try:
        replayed = await _replay_from_kafka(feed, replay_max, gap, sub.positions)
    except (LookupError, KafkaError, TimeoutError, OSError) as exc:
        metrics.labels("snapshot").inc()
        log.info("resume from %s impossible (%s): sending a snapshot", encode_positions(sent), exc)
        return None
    metrics.labels("kafka").inc()
    return [m for m in replayed if site is None or m.site == site]


async def _replay_from_kafka(
    feed: LiveFeed, replay_max: int, start: Positions, stop: Positions
) -> list[LiveMessage]:
    total = sum(stop[p] - offset for p, offset in start.items())
    if total > replay_max:
        raise LookupError(f"{total} missed messages > replay limit {replay_max}")
    if feed.replays_running >= feed.replay_slots:
        raise LookupError(f"{feed.replays_running} Kafka replays already running")
    feed.replays_running += 1
    try:
        return await _read_missed(feed, start, stop)
    finally:
        feed.replays_running -= 1


async def _read_missed(feed: LiveFeed, start: Positions, stop: Positions) -> list[LiveMessage]:
    async with asyncio.timeout(REPLAY_TIMEOUT_S):
        earliest = await earliest_offsets(feed, sorted(start))
        lost = [p for p, offset in start.items() if offset < earliest.get(p, 0)]
        if lost:
            raise LookupError(f"partitions {lost} no longer hold the missed messages")
        async with aclosing(read_range(feed, start, stop)) as messages:
            return [m async for m in messages]
