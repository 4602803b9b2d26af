"""RADIUS accounting server adapter: controllers and APs send Start / Interim / Stop here.

Uses pyrad 2.6's dictionary (RFC 2865/2866/2869 files shipped in this package) and a lean
decoder of our own (``radius_parse``) on a non-blocking socket the event loop watches (pyrad's
``Server`` logs and swallows per-packet errors without telling us why; we need a counted
reason for every dropped packet).

Order of work, and why: per packet parse → verify → de-duplicate → pseudonymise; per burst
(what the socket held) write the events durably to the outbox in one transaction → only
then send the Accounting-Responses. A NAS that gets no response retransmits, so a crash
before the commit loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import OrderedDict
from dataclasses import replace
from datetime import UTC, datetime
from typing import NamedTuple

from pydantic import ValidationError
from pyrad.dictionary import Dictionary

from core.privacy import InvalidMac
from edge.wifi import udp_socket
from edge.wifi.adapter import SourceStats
from edge.wifi.inventory import Inventory
from edge.wifi.radius_parse import (
    DEFAULT_MAX_SKEW_S,
    NasRestart,
    Rejected,
    Request,
    load_dictionary,
    parse_accounting,
    reply_packet,
)
from edge.wifi.sessions import EventEmitter, SessionFacts, SessionStatus
from schemas.envelope import EventBase
from schemas.wifi import WifiSessionData, WifiSessionStopV1

log = logging.getLogger(__name__)

Addr = tuple[str | object, ...]

#: NAS retransmit within seconds (RFC 5080 suggests up to ~30 s in total); keep a margin.
DEDUP_TTL_S = 120.0
DEDUP_MAX = 200_000
#: Larger than any RADIUS packet (4096), so an oversized one is seen and rejected as such.
MAX_DATAGRAM = 8192
#: Group commit: the datagrams waiting on the socket are read in one go (at most this many,
#: so syslog/Meraki on the same loop get their turn), their events share one outbox
#: transaction, and all of them are answered once it has committed (never before).
DRAIN_MAX = 256
#: Open sessions remembered (all NASes) so Accounting-On/Off can close them; oldest evicted.
OPEN_MAX = 200_000
#: A Start this soon after its session's Stop, when that Stop came without the Start ever
#: seen, is the late Start of that session (retransmitted after a failed commit or a loss),
#: not a reuse of the id. Real reuse follows a NAS reboot, which takes longer.
LATE_START_S = 30.0
#: Such stopped-without-a-start sessions remembered (the oldest is forgotten).
LATE_START_MAX = 10_000


class Deduplicator:
    """Recent packet keys, for between ``ttl``/2 and ``ttl`` seconds, in two generations.

    Why generations of hashes instead of an ordered map of keys with times: at 5,000
    packets/s the filter holds up to ``max_entries`` keys, and ~220 bytes each was most of
    the agent's memory (measured 120 MB after 120,000 packets); a set of 64-bit hashes costs
    ~60. A hash collision (about 1e-14 per packet when full) would answer a new packet as a
    retransmission; the NAS then retransmits nothing and that report is lost.
    """

    def __init__(self, ttl: float = DEDUP_TTL_S, max_entries: int = DEDUP_MAX) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._current: set[int] = set()
        self._previous: set[int] = set()
        self._since: float | None = None

    def _age(self, now: float) -> None:
        if self._since is None:
            self._since = now
        elapsed = now - self._since
        if elapsed >= self.ttl / 2 or len(self._current) >= self.max_entries // 2:
            self._previous = self._current if elapsed < self.ttl else set()
            self._current = set()
            self._since = now

    def seen(self, key: bytes, now: float) -> bool:
        self._age(now)
        h = hash(key)
        return h in self._current or h in self._previous

    def remember(self, key: bytes, now: float) -> None:
        """Call only once the report is safely in the outbox, so a failed write is retried."""
        self._age(now)
        self._current.add(hash(key))


class _OpenSession(NamedTuple):
    """What closing a session needs (a tuple: a whole event per open session cost ~2 KB)."""

    client_id: str
    randomized: bool
    site: str
    ap: str
    ssid: str | None
    last: datetime
    start: datetime | None


class RadiusAccountingAdapter(asyncio.DatagramProtocol):
    """Listens on UDP (1813 by default); one instance per agent."""

    name = "radius"

    def __init__(
        self,
        emitter: EventEmitter,
        inventory: Inventory,
        host: str = "0.0.0.0",
        port: int = 1813,
        dictionary: Dictionary | None = None,
        max_skew_s: float = DEFAULT_MAX_SKEW_S,
        rcvbuf: int = udp_socket.DEFAULT_RCVBUF,
    ) -> None:
        self.emitter = emitter
        self.inventory = inventory
        self.host = host
        self.port = port
        self.dictionary = dictionary or load_dictionary()
        self.max_skew_s = max_skew_s
        self.rcvbuf = rcvbuf
        self._socket: socket.socket | None = None
        self.stats = SourceStats("edge.wifi.radius")
        self.dedup = Deduplicator()
        self._pending: list[tuple[list[EventBase], bytes, Request, Addr]] = []
        #: NAS address -> session id -> what a Stop needs, for Accounting-On/Off.
        self._open: dict[str, OrderedDict[str, _OpenSession]] = {}
        self._open_count = 0
        self._pending_keys: set[bytes] = set()
        #: (NAS, session, entry before) per change to ``_open`` since the last commit: a
        #: failed commit restores them, so the NAS's retransmission meets the state it first
        #: met (a Stop that could not be stored must find its session open again).
        self._journal: list[tuple[str, str, _OpenSession | None]] = []
        #: (NAS, session) -> when it was stopped without its Start seen (monotonic).
        self._stopped_unstarted: OrderedDict[tuple[str, str], float] = OrderedDict()
        emitter.split_listeners.append(self._on_split)

    async def start(self) -> None:
        family, _, _, _, sockaddr = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_DGRAM
        )[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind(sockaddr)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        udp_socket.watch(sock, self.stats.source, self.rcvbuf)
        asyncio.get_running_loop().add_reader(sock.fileno(), self._drain)
        log.info("RADIUS accounting listening on %s:%d", self.host, self.port)

    def kernel_drops(self) -> int | None:
        """Datagrams the kernel dropped before we read them (receive buffer full)."""
        return udp_socket.udp_drops(self._socket) if self._socket else None

    async def stop(self) -> None:
        if self._socket is not None:
            asyncio.get_running_loop().remove_reader(self._socket.fileno())
            self._flush()
            self._socket.close()

    def _drain(self) -> None:
        """Read what the socket holds (up to DRAIN_MAX), then commit once and answer all.

        Why not asyncio's datagram transport: it hands over one datagram per wake-up of the
        loop, and a timer had to gather them for a group commit; reading until the socket
        is empty is the natural batch, and costs one system call per packet.
        """
        sock = self._socket
        if sock is None:
            return
        n = 0
        try:
            while n < DRAIN_MAX:
                try:
                    data, addr = sock.recvfrom(MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # e.g. ICMP port unreachable reported on the socket
                    continue
                n += 1
                self.datagram_received(data, addr)
        finally:
            self.stats.packets_received(n)
            self._flush()

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        """One datagram: its event joins the pending batch (answered in :meth:`_flush`)."""
        try:
            self._handle(data, str(addr[0]), addr)
        except Exception:  # last line of defence: a packet must never stop the server
            self.stats.drop("internal_error")
            log.exception("unexpected error handling a RADIUS packet (packet not logged)")

    def _handle(self, data: bytes, src_ip: str, addr: Addr) -> None:
        result = parse_accounting(
            data, src_ip, datetime.now(UTC), self.inventory, self.dictionary, self.max_skew_s
        )
        if isinstance(result, Rejected):
            self.stats.drop(result.reason)
            return
        if isinstance(result, tuple):
            rejected, req = result
            self.stats.drop(rejected.reason)
            self._reply(req, addr)
            return
        key: bytes = result.dedup_key
        if key in self._pending_keys:
            self.stats.drop("duplicate")  # answered when the first copy is committed
            return
        if self.dedup.seen(key, time.monotonic()):
            self.stats.drop("duplicate")
            self._reply(result.request, addr)  # the NAS missed our first answer
            return
        if isinstance(result, NasRestart):
            events = self._close_nas(result)
        else:
            nas = result.facts.nas or src_ip
            try:
                pseudo = self.emitter.pseudonymiser.pseudonymise(result.facts.mac)
                sid = self.emitter.session_key(result.facts, pseudo)
                facts = replace(result.facts, session_start=self._start_of(nas, sid, result.facts))
                events = [self.emitter.build_session(facts, self.stats, sid, pseudo)]
            except (InvalidMac, ValidationError):
                self.stats.drop("invalid_values")
                self._reply(result.request, addr)
                return
            self._track(nas, events[0])
        self._pending.append((events, key, result.request, addr))
        self._pending_keys.add(key)

    def _flush(self) -> None:
        """Commit pending events to the outbox, then answer their NASes (never before)."""
        batch, self._pending = self._pending, []
        journal, self._journal = self._journal, []
        self._pending_keys.clear()
        if not batch:
            return
        try:
            self.emitter.emit_many([e for events, _, _, _ in batch for e in events], self.stats)
        except Exception:  # unanswered, so the NAS retransmits and nothing is lost
            self._undo(journal)
            self.stats.drop("outbox_error", len(batch))
            log.exception("could not write %d events to the outbox", len(batch))
            return
        now = time.monotonic()
        for _, key, pkt, addr in batch:
            self.dedup.remember(key, now)
            self._reply(pkt, addr)

    def _start_of(self, nas: str, sid: str, facts: SessionFacts) -> datetime | None:
        """The session's start, part of its identity (so an Acct-Session-Id reused after a
        Stop is another session): a Start's own time; else the open session's start; else
        unknown (None: the worker merges by id alone), for every report of it this agent
        handles, whichever comes first.

        Why not event time - Acct-Session-Time for a session this agent never saw start:
        both are whole seconds counted on different clocks, so successive reports of one
        session derived starts a second apart, and each became a session of its own.
        """
        open_here = self._open.get(nas)
        known = open_here.get(sid) if open_here is not None else None
        if facts.status is SessionStatus.START and (known is None or known.start is not None):
            stopped = self._stopped_unstarted.get((nas, sid))
            if known is None and stopped is not None and time.monotonic() - stopped < LATE_START_S:
                return None  # the Stop overtook it: join that session
            return facts.event_time.replace(microsecond=0)
        # A Start after the session's other reports (its first copy was lost, or its commit
        # failed and the NAS retransmitted it later) joins them: one session, start unknown.
        return known.start if known is not None else None

    def _track(self, nas: str, event: EventBase, journal: bool = True) -> None:
        """Remember the session's latest event while it is open (the Stop forgets it)."""
        sid = str(event.data.session_id)  # type: ignore[attr-defined]
        sessions = self._open.setdefault(nas, OrderedDict())
        known = sessions.pop(sid, None)
        self._open_count -= known is not None
        if journal:
            self._journal.append((nas, sid, known))
        if isinstance(event, WifiSessionStopV1):
            if known is None or known.start is None:
                self._stopped_unstarted[(nas, sid)] = time.monotonic()
                if len(self._stopped_unstarted) > LATE_START_MAX:
                    self._stopped_unstarted.popitem(last=False)
            return
        d: WifiSessionData = event.data  # type: ignore[attr-defined]
        sessions[sid] = _OpenSession(
            d.client_id, d.randomized_mac, event.site, d.ap, d.ssid, event.event_time,
            d.session_start,
        )  # fmt: skip
        self._open_count += 1
        while self._open_count > OPEN_MAX:
            oldest = max(self._open.values(), key=len)
            oldest.popitem(last=False)
            self._open_count -= 1

    def _on_split(self, facts: SessionFacts, stop: EventBase, start: EventBase) -> None:
        """Key rotation split one of our sessions: Accounting-On/Off must close the new one."""
        if stop.source == self.stats.source and facts.nas is not None:
            self._track(facts.nas, stop, journal=False)  # already committed by the emitter
            self._track(facts.nas, start, journal=False)

    def _close_nas(self, restart: NasRestart) -> list[EventBase]:
        """Stop events (reason = Accounting-On/Off) for every session the NAS had open.

        Why: after a controller reboot its clients otherwise stayed "present" until the
        session timeout. Limitation: sessions opened before this agent started are unknown
        here (kept in memory only).
        """
        sessions = self._open.pop(restart.nas, OrderedDict())
        self._open_count -= len(sessions)
        self._journal.extend((restart.nas, sid, o) for sid, o in sessions.items())
        req = restart.request
        return [
            self.emitter.session_event(
                SessionStatus.STOP,
                client_id=o.client_id,
                randomized=o.randomized,
                session_id=sid,
                site=o.site,
                ap=o.ap,
                event_time=max(restart.event_time, o.last),
                dedup_key=f"{sid}|{restart.status}|{req.ident}|{req.authenticator.hex()}",
                stats=self.stats,
                ssid=o.ssid,
                terminate_cause=restart.status,
                session_start=o.start,
            )
            for sid, o in sessions.items()
        ]

    def _undo(self, journal: list[tuple[str, str, _OpenSession | None]]) -> None:
        """Put ``_open`` back as it was before the changes in ``journal`` (latest first)."""
        for nas, sid, before in reversed(journal):
            sessions = self._open.setdefault(nas, OrderedDict())
            self._open_count -= sessions.pop(sid, None) is not None
            if before is not None:
                sessions[sid] = before
                self._open_count += 1

    def _reply(self, req: Request, addr: Addr) -> None:
        if self._socket is None:
            return
        try:
            self._socket.sendto(reply_packet(req), addr)
        except OSError:  # send buffer full or peer gone: the NAS retransmits, we answer then
            self.stats.drop("reply_failed")
