"""Generate Wi-Fi session event streams and compute their exact rollups independently.

The expectation here is written from the definitions (not from the sink's SQL): a session
spans [first event, stop or last event + timeout); a minute counts the distinct clients
whose session overlaps it, the sessions that began in it and the sessions that ended in it;
every site has a row for each minute from its first event's minute to the newest event's
minute anywhere.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas.wifi import (
    WifiSessionData,
    WifiSessionInterimV1,
    WifiSessionStartV1,
    WifiSessionStopV1,
)

WifiEvent = WifiSessionStartV1 | WifiSessionInterimV1 | WifiSessionStopV1
MINUTE = timedelta(minutes=1)
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def make_event(
    kind: str, site: str, session: str, client: str, t: datetime, event_id: str | None = None
) -> WifiEvent:
    model = {"start": WifiSessionStartV1, "interim": WifiSessionInterimV1,
             "stop": WifiSessionStopV1}[kind]  # fmt: skip
    data = WifiSessionData(client_id=client, session_id=session, ap=f"{site}-ap1")
    extra = {"id": event_id} if event_id else {}
    return model(site=site, device=f"{site}-ctl", source="test.wifi", event_time=t, data=data,
                 **extra)  # fmt: skip


def generate(
    n_events: int,
    sites: list[str],
    seed: int = 7,
    t0: datetime = T0,
    stop_ratio: float = 0.7,
) -> list[WifiEvent]:
    """Sessions of 1-6 events each, in event-time order, ~70 % of them with a stop."""
    rng = random.Random(seed)
    events: list[WifiEvent] = []
    n = 0
    while len(events) < n_events:
        site = rng.choice(sites)
        client = f"{rng.randrange(16**16):016x}" if rng.random() > 0.1 else f"{n % 50:016x}"
        session = f"s{n}"
        n += 1
        t = t0 + timedelta(seconds=rng.uniform(0, 1800))
        events.append(make_event("start", site, session, client, t))
        for _ in range(rng.randrange(0, 4)):
            t += timedelta(seconds=rng.uniform(10, 240))
            events.append(make_event("interim", site, session, client, t))
        if rng.random() < stop_ratio:
            t += timedelta(seconds=rng.uniform(1, 120))
            events.append(make_event("stop", site, session, client, t))
    events = events[:n_events]
    events.sort(key=lambda e: e.event_time)
    return events


def disorder(events: list[WifiEvent], seed: int = 3, dup_ratio: float = 0.05) -> list[WifiEvent]:
    """Same events with duplicates (same id) and local reordering, plus a few very late."""
    rng = random.Random(seed)
    out = list(events) + [e for e in events if rng.random() < dup_ratio]
    keyed = [(i + rng.uniform(-30, 30), e) for i, e in enumerate(out)]
    for k in range(0, len(keyed), 97):  # every 97th event arrives far too late
        keyed[k] = (keyed[k][0] + len(out), keyed[k][1])
    keyed.sort(key=lambda p: p[0])
    return [e for _, e in keyed]


@dataclass
class _Session:
    client: str
    start: datetime
    last: datetime
    stop: datetime | None


def expected_rollups(
    events: list[WifiEvent], timeout: timedelta
) -> dict[tuple[str, datetime], tuple[int, int, int]]:
    sessions: dict[tuple[str, str], _Session] = {}
    first_minute: dict[str, datetime] = {}
    for e in {(e.event_time, e.id): e for e in events}.values():
        key = (e.site, e.data.session_id)
        s = sessions.setdefault(key, _Session(e.data.client_id, e.event_time, e.event_time, None))
        s.start, s.last = min(s.start, e.event_time), max(s.last, e.event_time)
        if e.type == "wifi.session.stop":
            s.stop = e.event_time if s.stop is None else min(s.stop, e.event_time)
        m = e.event_time.replace(second=0, microsecond=0)
        first_minute[e.site] = min(first_minute.get(e.site, m), m)
    through = max(e.event_time for e in events).replace(second=0, microsecond=0)
    out = {}
    for site, first in first_minute.items():
        spans = [(s.client, s.start, s.stop or s.last + timeout)
                 for (st, _), s in sessions.items() if st == site]  # fmt: skip
        m = first
        while m <= through:
            nxt = m + MINUTE
            out[(site, m)] = (
                len({c for c, a, b in spans if a < nxt and b > m}),
                sum(1 for _, a, _ in spans if m <= a < nxt),
                sum(1 for _, _, b in spans if m <= b < nxt),
            )
            m = nxt
    return out
