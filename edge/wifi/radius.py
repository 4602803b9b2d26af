"""RADIUS accounting server adapter: controllers and APs send Start / Interim / Stop here.

Uses pyrad 2.6 for packet decoding, authenticator checks and replies, on an asyncio UDP
endpoint of our own (pyrad's ``Server`` logs and swallows per-packet errors without telling
us why; we need a counted reason for every dropped packet).

Order of work per packet, and why: parse → verify → de-duplicate → pseudonymise and write
the event durably to the outbox → only then send Accounting-Response. A NAS that gets no
response retransmits, so a crash before the write loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from datetime import UTC, datetime

from pydantic import ValidationError
from pyrad.dictionary import Dictionary
from pyrad.packet import AccountingResponse, AcctPacket

from edge.privacy import InvalidMac
from edge.wifi.adapter import SourceStats
from edge.wifi.inventory import Inventory
from edge.wifi.radius_parse import Rejected, dedup_key, load_dictionary, parse_accounting
from edge.wifi.sessions import EventEmitter

log = logging.getLogger(__name__)

#: NAS retransmit within seconds (RFC 5080 suggests up to ~30 s in total); keep a margin.
DEDUP_TTL_S = 120.0
DEDUP_MAX = 200_000


class Deduplicator:
    """Remembers recent report keys for ``ttl`` seconds, bounded in size (oldest evicted)."""

    def __init__(self, ttl: float = DEDUP_TTL_S, max_entries: int = DEDUP_MAX) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[object, ...], float] = OrderedDict()

    def seen(self, key: tuple[object, ...], now: float) -> bool:
        while self._seen:
            oldest_key, t = next(iter(self._seen.items()))
            if now - t <= self.ttl and len(self._seen) < self.max_entries:
                break
            del self._seen[oldest_key]
        return key in self._seen

    def remember(self, key: tuple[object, ...], now: float) -> None:
        """Call only once the report is safely in the outbox, so a failed write is retried."""
        self._seen[key] = now


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
    ) -> None:
        self.emitter = emitter
        self.inventory = inventory
        self.host = host
        self.port = port
        self.dictionary = dictionary or load_dictionary()
        self.stats = SourceStats("edge.wifi.radius")
        self.dedup = Deduplicator()
        self.transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.host, self.port)
        )
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        log.info("RADIUS accounting listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self.transport:
            self.transport.close()

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.stats.packet()
        try:
            self._handle(data, str(addr[0]), addr)
        except Exception:  # last line of defence: a packet must never stop the server
            self.stats.drop("internal_error")
            log.exception("unexpected error handling a RADIUS packet (packet not logged)")

    def _handle(self, data: bytes, src_ip: str, addr: tuple[str | object, ...]) -> None:
        result = parse_accounting(data, src_ip, datetime.now(UTC), self.inventory, self.dictionary)
        if isinstance(result, Rejected):
            self.stats.drop(result.reason)
            return
        if isinstance(result, tuple):
            rejected, pkt = result
            self.stats.drop(rejected.reason)
            self._reply(pkt, addr)
            return
        key = dedup_key(result.packet, src_ip)
        if self.dedup.seen(key, time.monotonic()):
            self.stats.drop("duplicate")
            self._reply(result.packet, addr)  # the NAS missed our first answer
            return
        try:
            self.emitter.session(result.facts, self.stats)
        except (InvalidMac, ValidationError):
            self.stats.drop("invalid_values")
        self.dedup.remember(key, time.monotonic())
        self._reply(result.packet, addr)

    def _reply(self, pkt: AcctPacket, addr: tuple[str | object, ...]) -> None:
        reply = pkt.CreateReply()
        reply.code = AccountingResponse
        if self.transport:
            self.transport.sendto(reply.ReplyPacket(), addr)
