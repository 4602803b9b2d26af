"""Parsing MAC addresses in the spellings network gear uses, without ever echoing them.

RADIUS Calling-Station-Id, hostapd log lines and vendor webhooks spell the same MAC as
``AA-BB-CC-DD-EE-FF``, ``aa:bb:cc:dd:ee:ff``, ``aabb.ccdd.eeff`` or ``AABBCCDDEEFF``; they
must all hash to the same pseudonym, so everything is normalised to 6 raw bytes first.
Error messages deliberately never contain the input: a malformed MAC may still be a MAC.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[:\-.\s]")
_HEX12 = re.compile(r"^[0-9a-fA-F]{12}$")


class InvalidMac(ValueError):
    """The value is not a 48-bit MAC address (the message never includes the value)."""


def normalise_mac(mac: str | bytes) -> bytes:
    """Return the 6 address bytes of ``mac`` in any common spelling; raise :class:`InvalidMac`.

    Accepts colon, dash, dot (Cisco) or no separators, any case, surrounding whitespace,
    and 6 raw bytes (hostapd control-socket and some binary sources).
    """
    if isinstance(mac, bytes):
        if len(mac) == 6:
            return mac
        try:
            mac = mac.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidMac("MAC address is not ASCII") from None
    compact = _SEPARATORS.sub("", mac.strip())
    if not _HEX12.match(compact):
        raise InvalidMac(f"not a 48-bit MAC address ({len(mac)} characters)")
    return bytes.fromhex(compact)


def is_locally_administered(mac: str | bytes) -> bool:
    """True for locally administered (typically randomised-by-the-phone) addresses.

    Bit 1 of the first octet (the U/L bit) is set by iOS/Android private addresses, so
    analytics can tell "one new visitor" from "a phone that re-randomised its MAC".
    """
    return bool(normalise_mac(mac)[0] & 0x02)
