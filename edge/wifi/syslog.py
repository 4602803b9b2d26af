"""hostapd over syslog (UDP): OpenWrt APs and vendors that can only log.

Accepts RFC 3164 / RFC 5424 lines carrying hostapd's ``<ifname>: AP-STA-CONNECTED <mac>``
(also what ``firmware_scripts/openwrt/tourpulse-hostapd-action.sh`` logs, tagged with the
AP id). The AP is found from the tag ``tourpulse-ap[<ap-id>]``, else the syslog HOSTNAME
(AP id or NAS-Identifier), else the sender's address (AP ``nas_ip``). Tag and HOSTNAME are
claims anyone on the LAN can write, so the sender's address must then be the AP's own
``nas_ip`` or a RADIUS NAS (controller) of the AP's site; else ``unexpected_sender``.

hostapd has no session id, so one is made at connect time and remembered (keyed by the
pseudonym, never the MAC) until the disconnect.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from datetime import UTC, datetime

from pydantic import ValidationError

from core.privacy import InvalidMac
from device_configs.models import AccessPoint
from edge.wifi.adapter import SourceStats
from edge.wifi.inventory import Inventory
from edge.wifi.sessions import EventEmitter, SessionFacts, SessionStatus
from schemas.envelope import EventBase

log = logging.getLogger(__name__)

MAX_LINE = 2048
#: Per sender: a busy AP logs a few station events a second; a flood from one address must
#: not starve the RADIUS server that shares this agent's loop. Token bucket, bounded table.
RATE_PER_S = 100.0
BURST = 200.0
SENDERS_MAX = 10_000
OPEN_SESSIONS_MAX = 100_000

#: The interface name is bounded (Linux IFNAMSIZ is 16): unbounded, ``search`` rescanned
#: every run of name characters from each start position (quadratic: 13.8 ms per 2 KB line).
_EVENT = re.compile(
    r"(?P<ifname>[A-Za-z0-9_.-]{1,32}): (?P<event>AP-STA-CONNECTED|AP-STA-DISCONNECTED) "
    r"(?P<mac>[0-9A-Fa-f:]{17})(?P<rest>.*)$"
)
_TAG_AP = re.compile(r"tourpulse-ap\[(?P<ap>[a-z0-9][a-z0-9._-]{0,62})\]")
_RFC3164_HOST = re.compile(r"^<\d{1,3}>(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) ")
_RFC5424_HOST = re.compile(r"^<\d{1,3}>\d \S+ (?P<host>\S+) ")
_SSID = re.compile(r"\bssid=(?P<ssid>[^\t]{1,32}?)(?:\t|$)")

_STATUS = {"AP-STA-CONNECTED": SessionStatus.START, "AP-STA-DISCONNECTED": SessionStatus.STOP}


class SyslogAdapter(asyncio.DatagramProtocol):
    name = "syslog"

    def __init__(
        self, emitter: EventEmitter, inventory: Inventory, host: str = "0.0.0.0", port: int = 514
    ) -> None:
        self.emitter = emitter
        self.inventory = inventory
        self.host = host
        self.port = port
        self.stats = SourceStats("edge.wifi.hostapd")
        self.transport: asyncio.BaseTransport | None = None
        self._open: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # ip -> tokens, t
        emitter.split_listeners.append(self._on_split)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.host, self.port)
        )
        self.port = self.transport.get_extra_info("sockname")[1]
        log.info("hostapd syslog receiver on %s:%d/udp", self.host, self.port)

    async def stop(self) -> None:
        if self.transport:
            self.transport.close()

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.stats.packet()
        try:
            self.handle_line(data, str(addr[0]))
        except Exception:  # a log line must never stop the receiver
            self.stats.drop("internal_error")
            log.exception("unexpected error handling a syslog line (line not logged)")

    def _allowed(self, src_ip: str) -> bool:
        now = time.monotonic()
        tokens, then = self._buckets.pop(src_ip, (BURST, now))
        tokens = min(BURST, tokens + (now - then) * RATE_PER_S)
        self._buckets[src_ip] = (tokens - 1, now) if tokens >= 1 else (tokens, now)
        while len(self._buckets) > SENDERS_MAX:
            self._buckets.popitem(last=False)
        return tokens >= 1

    def handle_line(self, data: bytes, src_ip: str) -> None:
        if not self._allowed(src_ip):
            self.stats.drop("rate_limited")
            return
        if len(data) > MAX_LINE:
            self.stats.drop("too_large")
            return
        line = data.decode("utf-8", "replace").rstrip("\r\n\x00")
        at = line.find(": AP-STA-")  # one linear scan; the regex then starts next to it
        m = _EVENT.search(line, max(0, at - 32)) if at >= 0 else None
        if not m:
            self.stats.drop("not_a_station_event")
            return
        ap = self._ap(line, src_ip)
        if isinstance(ap, str):
            self.stats.drop(ap)
            return
        ssid_m = _SSID.search(m.group("rest"))
        now = datetime.now(UTC)
        status = _STATUS[m.group("event")]
        try:
            client = self.emitter.pseudonymiser.client_id(m.group("mac"))
        except InvalidMac:
            self.stats.drop("invalid_mac")
            return
        session_id = self._session_id(ap.id, client, status, now)
        facts = SessionFacts(
            status=status,
            mac=m.group("mac"),
            session_id=session_id,
            site=ap.site,
            ap=ap.id,
            event_time=now,
            dedup_key=f"{session_id}|{status}",
            ssid=ssid_m.group("ssid") if ssid_m else (ap.ssids[0] if ap.ssids else None),
        )
        try:
            self.emitter.session(facts, self.stats)
        except ValidationError:
            self.stats.drop("invalid_values")

    def _ap(self, line: str, src_ip: str) -> AccessPoint | str:
        """The AP the line is about, or why there is none (a drop reason)."""
        claimed: AccessPoint | None = None
        tag = _TAG_AP.search(line)
        if tag:
            claimed = self.inventory.aps.get(tag.group("ap"))
        else:
            host = _RFC3164_HOST.match(line) or _RFC5424_HOST.match(line)
            if host:
                claimed = self.inventory.ap_by_nas_identifier(host.group("host"))
        if claimed is None:
            by_ip = (a for a in self.inventory.aps.values() if str(a.nas_ip) == src_ip)
            return next(by_ip, "unknown_ap")
        return claimed if self._may_speak_for(claimed, src_ip) else "unexpected_sender"

    def _may_speak_for(self, ap: AccessPoint, src_ip: str) -> bool:
        """The AP itself, or a controller (RADIUS NAS) of its site."""
        if ap.nas_ip is not None and str(ap.nas_ip) == src_ip:
            return True
        nas = self.inventory.nas(src_ip)
        return nas is not None and nas.site == ap.site

    def _on_split(self, facts: SessionFacts, stop: EventBase, start: EventBase) -> None:
        """Key rotation restarted one of our sessions: the disconnect must close the new one."""
        if stop.source == self.stats.source:
            old, new = stop.data, start.data  # type: ignore[attr-defined]
            self._open.pop((facts.ap, old.client_id), None)
            self._open[(facts.ap, new.client_id)] = new.session_id

    def _session_id(self, ap: str, client: str, status: SessionStatus, now: datetime) -> str:
        key = (ap, client)
        if status is SessionStatus.START:
            sid = f"hostapd-{ap}-{client[:12]}-{int(now.timestamp() * 1000)}"
            self._open[key] = sid
            while len(self._open) > OPEN_SESSIONS_MAX:
                self._open.popitem(last=False)
            return sid
        # A disconnect without a known connect (agent restarted) still closes *a* session.
        return self._open.pop(key, None) or f"hostapd-{ap}-{client[:12]}-{int(time.time())}"
