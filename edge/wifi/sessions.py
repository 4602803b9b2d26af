"""From what a source knows about a session to a contract event, with the MAC gone.

Every adapter fills a :class:`SessionFacts` (raw MAC included, in memory only) and calls
:meth:`EventEmitter.session`; this is the one place a MAC is turned into a pseudonym, so
no adapter can forget to. A NAS's own session id (free text that vendors build from user
names, IPs and MACs, e.g. Aruba ``guest/10.20.1.99/<mac>``) is never published either: it is
replaced by a keyed hash of (NAS, session id, client), the session's identity.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
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
    #: When the association started (whole seconds), if known: part of the identity.
    session_start: datetime | None = None


class EventEmitter:
    """Pseudonymises, builds the contract event and submits it to the sink."""

    def __init__(self, sink: EventSink, pseudonymiser: Pseudonymiser, device: str) -> None:
        self.sink = sink
        self.pseudonymiser = pseudonymiser
        self.device = device

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
