"""From what a source knows about a session to a contract event, with the MAC gone.

Every adapter fills a :class:`SessionFacts` (raw MAC included, in memory only) and calls
:meth:`EventEmitter.session`; this is the one place a MAC is turned into a pseudonym, so
no adapter can forget to. A NAS's own session id (free text that vendors build from user
names, IPs and MACs, e.g. Aruba ``guest/10.20.1.99/<mac>``) is never published either: it is
replaced by a keyed hash of (NAS, session id, client), the session's identity.

At the daily key rotation (:meth:`EventEmitter.split_at_rotation`, run by the agent's
timer) every open session is stopped under the old pseudonym and restarted under the new
one, both with the reason :data:`KEY_ROTATION`, so no session links two key days. To make
the new pseudonym the emitter keeps each open session's last :class:`SessionFacts` (the MAC
included) in memory until its stop: the adapters hold MACs in memory while parsing anyway;
they are still never stored, logged or published.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from core.privacy import Pseudonym, Pseudonymiser
from edge.wifi.adapter import EventSink, SourceStats
from schemas.envelope import EventBase
from schemas.wifi import (
    WifiSessionData,
    WifiSessionInterimV1,
    WifiSessionStartV1,
    WifiSessionStopV1,
)

#: Stable namespace so a retransmitted report gets the same event id even after a restart.
EVENT_ID_NS = uuid.UUID("6f1c1f7e-3b7a-4d1e-9c55-2b0c7e1a9d01")
#: ``terminate_cause`` / ``start_cause`` of the stop and start that split a session at the
#: daily key rotation.
KEY_ROTATION = "Key-Rotation"
#: Open sessions remembered for the rotation split; the least recently reported is forgotten.
TRACKED_MAX = 200_000
#: A session not reported for this long at rotation lost its stop: forgotten, not split.
STALE_AFTER = timedelta(hours=6)
_NS_BYTES = EVENT_ID_NS.bytes


def event_id(name: str) -> str:
    """``str(uuid.uuid5(EVENT_ID_NS, name))`` without building UUID objects (hot path)."""
    h = bytearray(hashlib.sha1(_NS_BYTES + name.encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50  # version 5
    h[8] = (h[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


class SessionStatus(StrEnum):
    START = "start"
    INTERIM = "interim"
    STOP = "stop"


_MODELS: dict[SessionStatus, type[EventBase]] = {
    SessionStatus.START: WifiSessionStartV1,
    SessionStatus.INTERIM: WifiSessionInterimV1,
    SessionStatus.STOP: WifiSessionStopV1,
}


@dataclass(frozen=True)
class SessionFacts:
    status: SessionStatus
    mac: str | bytes  # raw client MAC (text or 6 bytes): never stored, logged or published
    session_id: str
    site: str
    ap: str
    event_time: datetime
    dedup_key: str  # identifies *this report*; retransmissions share it
    ssid: str | None = None
    signal_dbm: int | None = None
    rx_bytes: int | None = None
    tx_bytes: int | None = None
    session_seconds: int | None = None
    terminate_cause: str | None = None
    #: Set by RADIUS: ``session_id`` is then the NAS's raw Acct-Session-Id, published only as
    #: a keyed hash of (NAS, id, client), so an id reused by another NAS or client is a new
    #: session; ``dedup_key`` must then hold no identifier (it is prefixed with that hash).
    nas: str | None = None
    #: Why a session starts other than by a new association (:data:`KEY_ROTATION`).
    start_cause: str | None = None
    #: When the association started (whole seconds), if known: part of the identity.
    session_start: datetime | None = None


@dataclass
class _Tracked:
    """An open session as last reported: enough to stop it and restart it after rotation."""

    facts: SessionFacts
    stats: SourceStats
    client_id: str
    randomized: bool
    key_day: date
    started: datetime
    split: bool  # started by a key-rotation split: nothing of it may predate that


#: Told ``(facts, stop, start)`` after a split, so adapters can update their own tables.
SplitListener = Callable[[SessionFacts, EventBase, EventBase], None]


class EventEmitter:
    """Pseudonymises, builds the contract event and submits it to the sink."""

    def __init__(self, sink: EventSink, pseudonymiser: Pseudonymiser, device: str) -> None:
        self.sink = sink
        self.pseudonymiser = pseudonymiser
        self.device = device
        self._tracked: OrderedDict[str, _Tracked] = OrderedDict()  # published session id ->
        self.split_listeners: list[SplitListener] = []

    def session(self, facts: SessionFacts, stats: SourceStats) -> EventBase:
        """Build and submit; raises InvalidMac / ValidationError for the caller to count."""
        event = self.build_session(facts, stats)
        self.emit(event, stats)
        return event

    def session_key(self, facts: SessionFacts, pseudo: Pseudonym | None = None) -> str:
        """The published session id: for RADIUS ``radius-`` + keyed hash of (NAS, id, client)."""
        if facts.nas is None:
            return facts.session_id
        client_id = (pseudo or self.pseudonymiser.pseudonymise(facts.mac)).client_id
        return "radius-" + self.pseudonymiser.token(facts.nas, facts.session_id, client_id)

    def build_session(
        self,
        facts: SessionFacts,
        stats: SourceStats,
        session_key: str | None = None,
        pseudo: Pseudonym | None = None,
    ) -> EventBase:
        """The contract event for ``facts`` (MAC pseudonymised), not yet submitted;
        ``session_key`` / ``pseudo`` when the caller has computed them already."""
        pseudo = pseudo or self.pseudonymiser.pseudonymise(facts.mac)
        session_id, dedup_key = facts.session_id, facts.dedup_key
        if facts.nas is not None:
            session_id = session_key or self.session_key(facts, pseudo)
            dedup_key = f"{session_id.removeprefix('radius-')}|{facts.dedup_key}"
        facts = self._track(session_id, facts, stats, pseudo.client_id, pseudo.randomized)
        return self.session_event(
            facts.status,
            client_id=pseudo.client_id,
            randomized=pseudo.randomized,
            session_id=session_id,
            site=facts.site,
            ap=facts.ap,
            event_time=facts.event_time,
            dedup_key=dedup_key,
            stats=stats,
            ssid=facts.ssid,
            signal_dbm=facts.signal_dbm,
            rx_bytes=facts.rx_bytes,
            tx_bytes=facts.tx_bytes,
            session_seconds=facts.session_seconds,
            terminate_cause=facts.terminate_cause,
            start_cause=facts.start_cause,
            session_start=facts.session_start,
        )

    def session_event(
        self,
        status: SessionStatus,
        *,
        client_id: str,
        randomized: bool,
        session_id: str,
        site: str,
        ap: str,
        event_time: datetime,
        dedup_key: str,
        stats: SourceStats,
        ssid: str | None = None,
        signal_dbm: int | None = None,
        rx_bytes: int | None = None,
        tx_bytes: int | None = None,
        session_seconds: int | None = None,
        terminate_cause: str | None = None,
        start_cause: str | None = None,
        session_start: datetime | None = None,
    ) -> EventBase:
        """The event from an already pseudonymised client; ``session_id`` and ``dedup_key``
        must be MAC-free. The id derives from ``dedup_key``, so a re-sent report keeps it."""
        data = WifiSessionData(
            client_id=client_id,
            session_id=session_id[:128],
            ap=ap,
            ssid=ssid[:32] if ssid else None,
            randomized_mac=randomized,
            signal_dbm=signal_dbm,
            rx_bytes=rx_bytes,
            tx_bytes=tx_bytes,
            session_seconds=session_seconds,
            terminate_cause=terminate_cause,
            start_cause=start_cause,
            session_start=session_start,
        )
        return _MODELS[status].model_validate(
            {
                "id": event_id(f"{stats.source}|{dedup_key}"),
                "site": site,
                "device": self.device,
                "source": stats.source,
                "event_time": event_time,
                "data": data,
            }
        )

    def _track(
        self, sid: str, facts: SessionFacts, stats: SourceStats, client: str, randomized: bool
    ) -> SessionFacts:
        """Remember the open session; returns ``facts``, with a report that predates the
        session's split (a Stop delayed across 04:00) moved to the split instant."""
        known = self._tracked.pop(sid, None)
        if known is not None and known.split and facts.event_time < known.started:
            facts = replace(facts, event_time=known.started)
        if facts.status is SessionStatus.STOP:
            return facts
        store = self.pseudonymiser.key_store
        day = store.loaded_day or store.key_day()  # the key the pseudonym was made with
        started = known.started if known is not None else facts.event_time
        split = known.split if known is not None else facts.start_cause == KEY_ROTATION
        self._tracked[sid] = _Tracked(facts, stats, client, randomized, day, started, split)
        while len(self._tracked) > TRACKED_MAX:
            self._tracked.popitem(last=False)
        return facts

    def open_sessions(self) -> int:
        return len(self._tracked)

    def split_at_rotation(self, at: datetime) -> int:
        """Stop every session opened under an older key at ``at``, restart it under the new.

        The stop keeps the old pseudonym and session id; the start is built from the last
        facts with the new key, so its pseudonym and (RADIUS) session id are the ones the
        next interim from the NAS will carry. Returns the number of sessions split.
        """
        day = self.pseudonymiser.key_store.key_day(at)
        old = [(sid, t) for sid, t in self._tracked.items() if t.key_day < day]
        by_source: dict[str, tuple[SourceStats, list[EventBase]]] = {}
        split = []
        for sid, t in old:
            del self._tracked[sid]
            if at - t.facts.event_time > STALE_AFTER:
                continue
            stop = self.session_event(
                SessionStatus.STOP,
                client_id=t.client_id,
                randomized=t.randomized,
                session_id=sid,
                site=t.facts.site,
                ap=t.facts.ap,
                event_time=at,
                dedup_key=f"{sid}|{KEY_ROTATION}",
                stats=t.stats,
                ssid=t.facts.ssid,
                session_seconds=max(0, int((at - t.started).total_seconds())),
                terminate_cause=KEY_ROTATION,
                session_start=t.facts.session_start,  # the identity of the session it ends
            )
            facts = replace(
                t.facts,
                status=SessionStatus.START,
                event_time=at,
                dedup_key=KEY_ROTATION,
                start_cause=KEY_ROTATION,
                session_seconds=None,
                terminate_cause=None,
                # a new session from ``at`` (where the source gives starts at all)
                session_start=at.replace(microsecond=0) if t.facts.session_start else None,
            )
            if facts.nas is None:  # a session id made by the adapter from the old pseudonym
                client = self.pseudonymiser.client_id(facts.mac)
                new_sid = f"{t.stats.source}-{client[:16]}-{int(at.timestamp() * 1000)}"
                facts = replace(facts, session_id=new_sid, dedup_key=f"{new_sid}|{KEY_ROTATION}")
            start = self.build_session(facts, t.stats)
            by_source.setdefault(t.stats.source, (t.stats, []))[1].extend((stop, start))
            split.append((t.facts, stop, start))
        for stats, events in by_source.values():
            self.emit_many(events, stats)
        for facts, stop, start in split:
            for listener in self.split_listeners:
                listener(facts, stop, start)
        return len(split)

    def emit(self, event: EventBase, stats: SourceStats) -> None:
        self.sink.submit(event)
        stats.emitted(event)

    def emit_many(self, events: list[EventBase], stats: SourceStats) -> None:
        """One outbox transaction for a burst when the sink supports it."""
        submit_many = getattr(self.sink, "submit_many", None)
        if submit_many is not None:
            submit_many(events)
        else:
            for event in events:
                self.sink.submit(event)
        for event in events:
            stats.emitted(event)
