"""Decode and check one RADIUS accounting packet (RFC 2866/2869) into session facts.

Pure function of (bytes, source address, arrival time, inventory): easy to fuzz. Anything
wrong returns a :class:`Rejected` with a reason from a closed set; nothing raises, because
a packet from the network must never take the agent down.

Why not pyrad's ``AcctPacket`` per packet: it decodes every attribute through generic,
dictionary-driven code and a reply is a second packet object; at thousands of packets per
second that was most of the agent's CPU. Here one pass over the attribute bytes keeps the
values of the dozen attributes we use, decoded on demand with the types and value names
of the shipped pyrad dictionary, with pyrad's semantics (RFC 2866 request authenticator
over the packet up to its Length, Proxy-State copied into the reply, invalid UTF-8 kept as
bytes, integers exactly 4 bytes). ``tests/test_edge_wifi_fuzz.py`` checks this decoder
against pyrad's on the fuzz corpus.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any, NamedTuple

from pyrad.dictionary import Dictionary

from core.privacy import InvalidMac, normalise_mac
from edge.wifi.inventory import Inventory, Nas
from edge.wifi.sessions import SessionFacts, SessionStatus
from edge.wifi.vendors import Field, read_vendor_value

#: RFC 2865 packets are 20..4096 bytes; pyrad itself accepts up to 8192.
MAX_PACKET = 4096
#: Acct-Delay-Time beyond this is nonsense (a NAS clock bug), not a 10-day-old event.
MAX_DELAY_S = 24 * 3600
#: How far a NAS's Event-Timestamp may be from our clock before we distrust it (NTP-less
#: APs boot in 1970); configurable per agent (``radius.max_clock_skew_s``).
DEFAULT_MAX_SKEW_S = 300.0

_STATUS = {
    "Start": SessionStatus.START,
    "Interim-Update": SessionStatus.INTERIM,
    "Stop": SessionStatus.STOP,
}
#: A station id: a MAC in any vendor spelling (colon, dash, Cisco dot, bare; any case),
#: optionally followed by ``:SSID`` or ``;SSID`` (RFC 3580 3.20/3.21; both station ids).
_STATION = re.compile(
    r"^\s*(?P<mac>(?:[0-9A-Fa-f]{2}[-:]?){5}[0-9A-Fa-f]{2}"
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})(?:[:;](?P<ssid>.*))?$"
)


ACCOUNTING_REQUEST, ACCOUNTING_RESPONSE, PROXY_STATE, VENDOR_SPECIFIC = 4, 5, 33, 26
_USED = ("Acct-Status-Type", "Acct-Session-Id", "Calling-Station-Id", "Called-Station-Id",
         "NAS-Identifier", "Acct-Delay-Time", "Acct-Terminate-Cause", "Acct-Input-Octets",
         "Acct-Output-Octets", "Acct-Input-Gigawords", "Acct-Output-Gigawords",
         "Acct-Session-Time", "Event-Timestamp")  # fmt: skip


def load_dictionary() -> Dictionary:
    """The RFC 2865/2866/2869 dictionary shipped in this package (pyrad ships none)."""
    path = files("edge.wifi") / "dictionaries" / "dictionary"
    return Dictionary(str(path))


class AttributeTable:
    """Code → (name, type, value names) for the attributes we read, from a pyrad dictionary."""

    def __init__(self, dictionary: Dictionary) -> None:
        self.by_code: dict[int, str] = {}
        self.by_name: dict[str, tuple[str, dict[bytes, str]]] = {}
        for name in _USED:
            attr = dictionary.attributes[name]
            self.by_code[int(attr.code)] = name
            values = {raw: label for label, raw in attr.values.forward.items()}
            self.by_name[name] = (str(attr.type), values)


_TABLES: dict[int, AttributeTable] = {}


def attribute_table(dictionary: Dictionary) -> AttributeTable:
    """One table per dictionary object (built once, then a dict hit per packet)."""
    table = _TABLES.get(id(dictionary))
    if table is None:
        table = _TABLES[id(dictionary)] = AttributeTable(dictionary)
    return table


class Request(NamedTuple):
    """What a reply needs from its request: no packet object is kept."""

    ident: int
    authenticator: bytes
    secret: bytes
    proxy_state: tuple[bytes, ...]


def reply_packet(req: Request) -> bytes:
    """Accounting-Response (RFC 2866 section 3), Proxy-State copied in order (RFC 2865 5.33)."""
    attrs = b"".join(bytes([PROXY_STATE, len(v) + 2]) + v for v in req.proxy_state)
    header = struct.pack("!BBH", ACCOUNTING_RESPONSE, req.ident, 20 + len(attrs))
    auth = hashlib.md5(header + req.authenticator + attrs + req.secret).digest()
    return header + auth + attrs


class Attributes:
    """Raw values of the used attributes; read like pyrad's ``pkt.get(name)[0]``."""

    __slots__ = ("raw", "table", "vendor")

    def __init__(
        self, raw: dict[str, list[bytes]], table: AttributeTable, vendor: dict[str, str]
    ) -> None:
        self.raw = raw
        self.table = table
        self.vendor = vendor  # vendors.Field -> first value (edge.wifi.vendors)

    def one(self, name: str) -> Any:
        """The first value, or None; raises ValueError if *any* copy is undecodable (as
        pyrad decodes every copy)."""
        values = self.raw.get(name)
        if not values:
            return None
        kind, names = self.table.by_name[name]
        first = _decode(kind, names, values[0])
        for other in values[1:]:
            _decode(kind, names, other)
        return first


def read_attributes(data: bytes, dictionary: Dictionary) -> tuple[Attributes, tuple[bytes, ...]]:
    """The used attributes and the Proxy-State values of a correctly framed packet."""
    table = attribute_table(dictionary)
    raw: dict[str, list[bytes]] = {}
    vendor: dict[str, str] = {}
    proxy_state: list[bytes] = []
    length = int.from_bytes(data[2:4], "big")
    pos = 20
    while pos < length:  # framing already checked by structure_problem
        code, attr_len = data[pos], data[pos + 1]
        name = table.by_code.get(code)
        if name is not None:
            raw.setdefault(name, []).append(data[pos + 2 : pos + attr_len])
        elif code == PROXY_STATE:
            proxy_state.append(data[pos + 2 : pos + attr_len])
        elif code == VENDOR_SPECIFIC:
            read_vendor_value(data[pos + 2 : pos + attr_len], vendor)
        pos += attr_len
    return Attributes(raw, table, vendor), tuple(proxy_state)


def _decode(kind: str, names: dict[bytes, str], value: bytes) -> Any:
    label = names.get(value)
    if label is not None:
        return label
    if kind in ("integer", "date"):
        if len(value) != 4:
            raise ValueError("integer attribute is not 4 bytes")
        return int.from_bytes(value, "big")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value  # pyrad keeps undecodable strings as bytes


@dataclass(frozen=True)
class Rejected:
    """Why a packet produced no event; ``reply`` says whether to acknowledge it anyway.

    Authentic packets we cannot use (unknown AP, Accounting-On) are acknowledged so the NAS
    stops retransmitting; forged or broken ones get no answer, as RFC 2866 requires.
    """

    reason: str
    reply: bool = False


@dataclass(frozen=True)
class Accepted:
    facts: SessionFacts
    request: Request
    #: :func:`packet_key`: same NAS, identifier and authenticator = a retransmission.
    dedup_key: bytes


@dataclass(frozen=True)
class NasRestart:
    """Accounting-On / Accounting-Off (RFC 2866 5.1): the NAS (re)started or is going down,
    so every session it had open is over; it will not send their Stops."""

    status: str
    nas: str
    event_time: datetime
    request: Request
    dedup_key: bytes


def parse_accounting(
    data: bytes,
    src_ip: str,
    arrival: datetime,
    inventory: Inventory,
    dictionary: Dictionary,
    max_skew_s: float = DEFAULT_MAX_SKEW_S,
) -> Accepted | NasRestart | Rejected | tuple[Rejected, Request]:
    """Parse one datagram; ``(Rejected(reply=True), packet)`` when only a reply is due."""
    if len(data) < 20:
        return Rejected("truncated")
    if len(data) > MAX_PACKET:
        return Rejected("too_large")
    problem = structure_problem(data)
    if problem:
        return Rejected(problem)
    data = data[: int.from_bytes(data[2:4], "big")]  # octets past Length are padding (RFC 2865 3)
    nas = inventory.nas(src_ip)
    if nas is None:
        return Rejected("unknown_nas")
    if data[0] != ACCOUNTING_REQUEST:
        return Rejected("not_accounting_request")
    expected = hashlib.md5(data[:4] + bytes(16) + data[20:] + nas.secret).digest()
    if not hmac.compare_digest(expected, data[4:20]):
        return Rejected("bad_authenticator")  # also what a wrong shared secret looks like
    attrs, proxy_state = read_attributes(data, dictionary)
    req = Request(data[1], data[4:20], nas.secret, proxy_state)
    try:
        return _facts(attrs, req, nas, src_ip, arrival, inventory, max_skew_s)
    except (struct.error, IndexError, KeyError, ValueError, TypeError, UnicodeDecodeError):
        return Rejected("malformed_attribute")


def _facts(
    pkt: Attributes,
    req: Request,
    nas: Nas,
    src_ip: str,
    arrival: datetime,
    inventory: Inventory,
    max_skew_s: float,
) -> Accepted | NasRestart | Rejected | tuple[Rejected, Request]:
    raw_status = pkt.one("Acct-Status-Type")
    status = _STATUS.get(str(raw_status))
    if raw_status in ("Accounting-On", "Accounting-Off"):
        return NasRestart(str(raw_status), src_ip, arrival, req, packet_key(src_ip, req))
    if status is None:
        return (Rejected("ignored_status", reply=True), req)  # Accounting-On/Off and others
    session_id = pkt.one("Acct-Session-Id")
    if not session_id:
        return (Rejected("missing_session_id", reply=True), req)
    calling = pkt.one("Calling-Station-Id")
    client = _station(calling)[0] or str(calling or "")
    try:
        mac = normalise_mac(client)  # 6 bytes: pseudonymised without re-parsing
    except InvalidMac:
        return (Rejected("invalid_calling_station", reply=True), req)
    called = pkt.one("Called-Station-Id")
    bssid, ssid = _station(called)
    station_name, station_ssid = (None, None) if bssid else _named_station(called)
    vendor = pkt.vendor
    ssid = ssid or station_ssid or vendor.get(Field.SSID)
    nas_identifier = pkt.one("NAS-Identifier")
    names = (vendor.get(Field.AP_NAME), station_name, vendor.get(Field.AP_GROUP),
             vendor.get(Field.LOCATION))  # fmt: skip
    ap = inventory.resolve(
        nas, str(nas_identifier) if nas_identifier else None, bssid, [n for n in names if n]
    )
    if ap is None:
        return (Rejected("unknown_ap", reply=True), req)
    delay = int(pkt.one("Acct-Delay-Time") or 0)
    if not 0 <= delay <= MAX_DELAY_S:
        return (Rejected("bad_delay_time", reply=True), req)
    cause = pkt.one("Acct-Terminate-Cause")
    stamp = _int_or_none(pkt.one("Event-Timestamp"))
    sent = arrival
    if stamp is not None and abs(stamp - arrival.timestamp()) <= max_skew_s:
        sent = datetime.fromtimestamp(stamp, UTC)
    rx = _octets(pkt, "Acct-Input-Octets", "Acct-Input-Gigawords")
    tx = _octets(pkt, "Acct-Output-Octets", "Acct-Output-Gigawords")
    seconds = _int_or_none(pkt.one("Acct-Session-Time"))
    facts = SessionFacts(
        status=status,
        mac=mac,
        session_id=str(session_id)[:256],
        site=ap.site,
        ap=ap.id,
        event_time=sent - timedelta(seconds=delay),
        dedup_key=_report_key(str(raw_status), stamp, delay, rx, tx, seconds, req),
        ssid=ssid,
        rx_bytes=rx,
        tx_bytes=tx,
        session_seconds=seconds,
        terminate_cause=str(cause)[:64] if cause is not None else None,
        nas=src_ip,
    )
    return Accepted(facts, req, packet_key(src_ip, req))


def packet_key(src_ip: str, req: Request) -> bytes:
    """What identifies a retransmission: same NAS, identifier and Request Authenticator.

    The authenticator is an MD5 over the whole packet (session id and status included), so
    a true retransmission repeats it, while two different Interim-Updates that happen to
    reuse an identifier (radclient and busy NASes recycle the 256 ids fast) do not merge.
    One bytes object (~70 B), not a tuple holding the session id: the duplicate filter
    keeps up to 200,000 of them, which at 5,000 packets/s is most of the agent's memory.
    """
    return req.authenticator + bytes([req.ident]) + src_ip.encode()


def _report_key(
    status: str,
    stamp: int | None,
    delay: int,
    rx: int | None,
    tx: int | None,
    seconds: int | None,
    req: Request,
) -> str:
    """What identifies one report of a session (the emitter prefixes the session identity).

    Why not the RADIUS identifier/authenticator: a NAS that retransmits after a while (or
    after our restart) updates Acct-Delay-Time, so the packet gets a new identifier and
    authenticator, yet it is the same report and must give the identical event (same id,
    same event time). Reports are told apart by Event-Timestamp - Acct-Delay-Time (constant
    across retransmissions), else by their counters; a session has one Start and one Stop.
    Only an Interim-Update with none of these falls back to the packet itself. Limitation:
    without Event-Timestamp, a Start reusing the same id for the same client within the
    outbox's memory (1 h) is taken for a retransmission.
    """
    if stamp is not None:
        return f"{status}|t{stamp - delay}"
    if status == "Start":
        return status
    if seconds is not None or rx is not None or tx is not None:
        return f"{status}|{seconds}|{rx}|{tx}"
    if status == "Stop":
        return status
    return f"{status}|{req.ident}|{req.authenticator.hex()}"


def structure_problem(data: bytes) -> str | None:
    """RFC 2865 section 3/5 framing; pyrad silently accepts an attribute that overruns."""
    length = int.from_bytes(data[2:4], "big")
    if length < 20 or length > len(data):
        return "bad_length"
    pos = 20
    while pos < length:
        if pos + 2 > length:
            return "malformed"
        attr_len = data[pos + 1]
        if attr_len < 2 or pos + attr_len > length:
            return "malformed"
        pos += attr_len
    return None


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None


def _octets(pkt: Attributes, low: str, giga: str) -> int | None:
    """Counters wrap at 4 GiB; RFC 2869 Gigawords carries how many times."""
    lo = pkt.one(low)
    if lo is None:
        return None
    return (int(pkt.one(giga) or 0) << 32) + int(lo)


def _station(value: Any) -> tuple[str | None, str | None]:
    """``AA-BB-CC-DD-EE-FF:SSID`` (RFC 3580 3.20) → (MAC, SSID); any MAC spelling."""
    if not value:
        return None, None
    m = _STATION.match(str(value))
    if not m:
        return None, None
    return m.group("mac"), (m.group("ssid") or None)


def _named_station(value: Any) -> tuple[str | None, str | None]:
    """A Called-Station-Id that is no MAC: ``NAME`` or ``NAME:SSID`` (MikroTik hotspot
    server; Cisco WLC ``ap-name-ssid`` / ``ap-location``), looked up as an AP name."""
    if not value or not isinstance(value, str):
        return None, None
    name, _, ssid = value.replace(";", ":").partition(":")
    return (name.strip() or None), (ssid or None)
