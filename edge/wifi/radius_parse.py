"""Decode and check one RADIUS accounting packet (RFC 2866/2869) into session facts.

Pure function of (bytes, source address, arrival time, inventory): easy to fuzz. Anything
wrong returns a :class:`Rejected` with a reason from a closed set; nothing raises, because
a packet from the network must never take the agent down.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.resources import files
from typing import Any

from pyrad.dictionary import Dictionary
from pyrad.packet import AccountingRequest, AcctPacket, PacketError

from edge.privacy import InvalidMac, normalise_mac
from edge.wifi.inventory import Inventory, Nas
from edge.wifi.sessions import SessionFacts, SessionStatus

#: RFC 2865 packets are 20..4096 bytes; pyrad itself accepts up to 8192.
MAX_PACKET = 4096
#: Acct-Delay-Time beyond this is nonsense (a NAS clock bug), not a 10-day-old event.
MAX_DELAY_S = 24 * 3600

_STATUS = {
    "Start": SessionStatus.START,
    "Interim-Update": SessionStatus.INTERIM,
    "Stop": SessionStatus.STOP,
}
_CALLED = re.compile(r"^(?P<mac>(?:[0-9A-Fa-f]{2}[-:]?){5}[0-9A-Fa-f]{2})(?:[:;](?P<ssid>.*))?$")


def load_dictionary() -> Dictionary:
    """The RFC 2865/2866/2869 dictionary shipped in this package (pyrad ships none)."""
    path = files("edge.wifi") / "dictionaries" / "dictionary"
    return Dictionary(str(path))


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
    packet: AcctPacket


def parse_accounting(
    data: bytes, src_ip: str, arrival: datetime, inventory: Inventory, dictionary: Dictionary
) -> Accepted | Rejected | tuple[Rejected, AcctPacket]:
    """Parse one datagram; ``(Rejected(reply=True), packet)`` when only a reply is due."""
    if len(data) < 20:
        return Rejected("truncated")
    if len(data) > MAX_PACKET:
        return Rejected("too_large")
    problem = _structure_problem(data)
    if problem:
        return Rejected(problem)
    nas = inventory.nas(src_ip)
    if nas is None:
        return Rejected("unknown_nas")
    try:
        pkt = AcctPacket(packet=data, secret=nas.secret, dict=dictionary)
    except (PacketError, struct.error, IndexError, KeyError, ValueError, TypeError):
        return Rejected("malformed")
    if pkt.code != AccountingRequest:
        return Rejected("not_accounting_request")
    if not pkt.VerifyAcctRequest():
        return Rejected("bad_authenticator")  # also what a wrong shared secret looks like
    try:
        return _facts(pkt, nas, src_ip, arrival, inventory)
    except (struct.error, IndexError, KeyError, ValueError, TypeError, UnicodeDecodeError):
        return Rejected("malformed_attribute")


def _facts(
    pkt: AcctPacket, nas: Nas, src_ip: str, arrival: datetime, inventory: Inventory
) -> Accepted | Rejected | tuple[Rejected, AcctPacket]:
    status = _STATUS.get(str(_one(pkt, "Acct-Status-Type")))
    if status is None:
        return (Rejected("ignored_status", reply=True), pkt)  # Accounting-On/Off and others
    session_id = _one(pkt, "Acct-Session-Id")
    if not session_id:
        return (Rejected("missing_session_id", reply=True), pkt)
    calling = _one(pkt, "Calling-Station-Id")
    try:
        normalise_mac(str(calling or ""))
    except InvalidMac:
        return (Rejected("invalid_calling_station", reply=True), pkt)
    bssid, ssid = _called_station(_one(pkt, "Called-Station-Id"))
    nas_identifier = _one(pkt, "NAS-Identifier")
    ap = inventory.resolve(nas, str(nas_identifier) if nas_identifier else None, bssid)
    if ap is None:
        return (Rejected("unknown_ap", reply=True), pkt)
    delay = int(_one(pkt, "Acct-Delay-Time") or 0)
    if not 0 <= delay <= MAX_DELAY_S:
        return (Rejected("bad_delay_time", reply=True), pkt)
    cause = _one(pkt, "Acct-Terminate-Cause")
    facts = SessionFacts(
        status=status,
        mac=str(calling),
        session_id=str(session_id)[:256],
        site=ap.site,
        ap=ap.id,
        event_time=arrival - timedelta(seconds=delay),
        dedup_key=f"{src_ip}|{pkt.id}|{pkt.authenticator.hex()}",
        ssid=ssid,
        rx_bytes=_octets(pkt, "Acct-Input-Octets", "Acct-Input-Gigawords"),
        tx_bytes=_octets(pkt, "Acct-Output-Octets", "Acct-Output-Gigawords"),
        session_seconds=_int_or_none(_one(pkt, "Acct-Session-Time")),
        terminate_cause=str(cause)[:64] if cause is not None else None,
    )
    return Accepted(facts, pkt)


def _structure_problem(data: bytes) -> str | None:
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


def dedup_key(pkt: AcctPacket, src_ip: str) -> tuple[str, int, str, str, bytes]:
    """Same Acct-Session-Id + status + RADIUS identifier from the same NAS = a retransmit.

    The Request Authenticator is part of the key too: it is an MD5 over the whole packet, so
    a true retransmission repeats it, while two different Interim-Updates that happen to
    reuse an identifier (radclient and busy NASes recycle the 256 ids fast) do not merge.
    """
    return (
        src_ip,
        int(pkt.id),
        str(_one(pkt, "Acct-Session-Id")),
        str(_one(pkt, "Acct-Status-Type")),
        bytes(pkt.authenticator),
    )


def _one(pkt: AcctPacket, name: str) -> Any:
    values = pkt.get(name)
    return values[0] if values else None


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None


def _octets(pkt: AcctPacket, low: str, giga: str) -> int | None:
    """Counters wrap at 4 GiB; RFC 2869 Gigawords carries how many times."""
    lo = _one(pkt, low)
    if lo is None:
        return None
    return (int(_one(pkt, giga) or 0) << 32) + int(lo)


def _called_station(value: Any) -> tuple[str | None, str | None]:
    """``AA-BB-CC-DD-EE-FF:SSID`` (RFC 3580 3.20) → (AP MAC, SSID); tolerant of variants."""
    if not value:
        return None, None
    m = _CALLED.match(str(value))
    if not m:
        return None, None
    return m.group("mac"), (m.group("ssid") or None)
