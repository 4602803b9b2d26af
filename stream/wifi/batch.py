"""Turn a batch of decoded Wi-Fi session events into the column arrays the sink writes.

Kept free of I/O so the aggregation rules (what one batch means for each session and each
site) are unit-testable and shared by the sink and the tests' independent expectations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from schemas.batch import Rejected, decode_record
from schemas.wifi import WifiSessionInterimV1, WifiSessionStartV1, WifiSessionStopV1

WifiSessionEvent = WifiSessionStartV1 | WifiSessionInterimV1 | WifiSessionStopV1
WIFI_SESSION_TYPES = (WifiSessionStartV1, WifiSessionInterimV1, WifiSessionStopV1)

#: session_start of events whose source does not know it: a fixed sentinel, also the
#: column's default (migration 0600), so they keep merging by session id.
UNKNOWN_START = datetime.min.replace(tzinfo=UTC)

#: Column order of wifi_session_events as written by the sink.
RAW_COLUMNS = (
    "event_id", "event_time", "ingest_time", "site", "device", "type", "client_id",
    "session_id", "ap", "ssid", "randomized_mac", "signal_dbm", "rx_bytes", "tx_bytes",
    "session_seconds", "terminate_cause",
)  # fmt: skip


def session_events(values: Iterable[bytes]) -> tuple[list[WifiSessionEvent], list[Rejected]]:
    """The Wi-Fi session events of Kafka records (single events or batches), in order, and
    what is not one: bad records, bad batch elements, events of another kind."""
    events: list[WifiSessionEvent] = []
    rejected: list[Rejected] = []
    for raw in values:
        for item in decode_record(raw, WIFI_SESSION_TYPES):
            if isinstance(item, Rejected):
                rejected.append(item)
            else:
                events.append(cast(WifiSessionEvent, item))  # decode_record checked the type
    return events, rejected


def raw_row(ev: WifiSessionEvent) -> tuple[object, ...]:
    """One wifi_session_events row, in :data:`RAW_COLUMNS` order."""
    d = ev.data
    return (
        ev.id, ev.event_time, ev.ingest_time, ev.site, ev.device, ev.type, d.client_id,
        d.session_id, d.ap, d.ssid, d.randomized_mac, d.signal_dbm, d.rx_bytes, d.tx_bytes,
        d.session_seconds, d.terminate_cause,
    )  # fmt: skip


def unique_events(events: Iterable[WifiSessionEvent]) -> tuple[list[WifiSessionEvent], int]:
    """Drop repeats of the same (event_time, id) inside one batch; return (unique, dropped).

    The database deduplicates across batches; this only keeps one INSERT from carrying
    the same key twice.
    """
    seen: set[tuple[datetime, str]] = set()
    out: list[WifiSessionEvent] = []
    dropped = 0
    for ev in events:
        key = (ev.event_time, ev.id)
        if key in seen:
            dropped += 1
        else:
            seen.add(key)
            out.append(ev)
    return out, dropped


@dataclass
class SessionDelta:
    """What a batch says about one session: merged with LEAST/GREATEST in the database."""

    site: str
    session_id: str
    client_id: str
    ap: str
    first_seen: datetime
    last_seen: datetime
    stopped_at: datetime | None = None
    session_start: datetime = UNKNOWN_START

    def add(self, ev: WifiSessionEvent) -> None:
        t = ev.event_time
        self.first_seen = min(self.first_seen, t)
        self.last_seen = max(self.last_seen, t)
        if isinstance(ev, WifiSessionStopV1):
            self.stopped_at = t if self.stopped_at is None else min(self.stopped_at, t)


@dataclass
class SiteSpan:
    """Earliest and latest event time of a site in one batch."""

    first: datetime
    last: datetime


@dataclass
class BatchSummary:
    sessions: dict[tuple[str, str, datetime], SessionDelta] = field(default_factory=dict)
    sites: dict[str, SiteSpan] = field(default_factory=dict)


def summarise(events: Sequence[WifiSessionEvent], by_start: bool = False) -> BatchSummary:
    """Fold events (already known to be new) into per-session and per-site deltas.

    ``by_start``: a session is (site, session_id, session_start), as the occupancy sink
    stores it; without, (site, session_id) as the flows worker's own copy still keys it.
    """
    out = BatchSummary()
    for ev in events:
        start = (ev.data.session_start or UNKNOWN_START) if by_start else UNKNOWN_START
        key = (ev.site, ev.data.session_id, start)
        delta = out.sessions.get(key)
        if delta is None:
            stop = ev.event_time if isinstance(ev, WifiSessionStopV1) else None
            out.sessions[key] = SessionDelta(
                ev.site, ev.data.session_id, ev.data.client_id, ev.data.ap,
                ev.event_time, ev.event_time, stop, start,
            )  # fmt: skip
        else:
            delta.add(ev)
        span = out.sites.get(ev.site)
        if span is None:
            out.sites[ev.site] = SiteSpan(ev.event_time, ev.event_time)
        else:
            span.first = min(span.first, ev.event_time)
            span.last = max(span.last, ev.event_time)
    return out
