"""What each vendor's RADIUS accounting says about the SSID, the AP and its location.

Controllers put these in vendor-specific attributes (RFC 2865 5.26); the numbers are
Debian freeradius-common's dictionaries (``/usr/share/freeradius/dictionary.<vendor>``).
Adding an attribute, or a vendor, is one :class:`VendorAttribute` line in
:data:`VENDOR_ATTRIBUTES`; ``tests/integration/test_edge_wifi_vendors.py`` drives every line
with ``radclient`` and those dictionaries.

How each field is used (``radius_parse``): ``ssid`` fills in when Called-Station-Id names
none; ``ap_name``, then ``ap_group`` and ``location`` are looked up like a NAS-Identifier
(an AP's ``nas_identifier`` or id in the device configs), after NAS-Identifier and the
Called-Station MAC, so a controller that only names its APs still maps them.

Vendors that need no line: Ubiquiti UniFi sends only standard attributes (Called-Station-Id
``AP-MAC:SSID``; Debian has no UniFi dictionary); a MikroTik hotspot names its hotspot
server in Called-Station-Id and the router in NAS-Identifier (a non-MAC Called-Station-Id
is looked up as an AP name, as is Cisco WLC's ``ap-name-ssid`` / ``ap-location`` format).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Field(StrEnum):
    SSID = "ssid"
    AP_NAME = "ap_name"
    AP_GROUP = "ap_group"
    LOCATION = "location"


class VendorAttribute(NamedTuple):
    vendor: str
    name: str  # as in the Debian dictionary (documentation and tests)
    vendor_id: int
    type: int
    field: Field
    #: For ``key=value`` attributes (Cisco-AVPair): the key this line reads.
    avpair_key: str | None = None


VENDOR_ATTRIBUTES: tuple[VendorAttribute, ...] = (
    VendorAttribute("Aruba", "Aruba-Essid-Name", 14823, 5, Field.SSID),
    VendorAttribute("Aruba", "Aruba-Location-Id", 14823, 6, Field.AP_NAME),  # the AP's name
    VendorAttribute("Aruba", "Aruba-AP-Group", 14823, 10, Field.AP_GROUP),
    VendorAttribute("Cisco", "Cisco-AVPair", 9, 1, Field.SSID, "cisco-wlan-ssid"),  # C9800
    VendorAttribute("Cisco", "Cisco-AVPair", 9, 1, Field.SSID, "ssid"),  # IOS access points
    VendorAttribute("Ruckus", "Ruckus-SSID", 25053, 3, Field.SSID),
    VendorAttribute("Ruckus", "Ruckus-Wlan-Name", 25053, 135, Field.SSID),
    VendorAttribute("Ruckus", "Ruckus-Location", 25053, 5, Field.LOCATION),
    VendorAttribute("Ruckus", "Ruckus-Zone-Name", 25053, 134, Field.AP_GROUP),
    VendorAttribute("Meraki", "Meraki-Ap-Name", 29671, 3, Field.AP_NAME),
    VendorAttribute("Meraki", "Meraki-Device-Name", 29671, 1, Field.AP_NAME),
    VendorAttribute("Meraki", "Meraki-Network-Name", 29671, 2, Field.LOCATION),
    # Hotspot gateways (MikroTik and others) that speak WISPr.
    VendorAttribute("WISPr", "WISPr-Location-Name", 14122, 2, Field.LOCATION),
    VendorAttribute("WISPr", "WISPr-Location-ID", 14122, 1, Field.LOCATION),
)

#: (vendor id, type) -> lines reading it, for the decoder (a dict hit per sub-attribute).
BY_CODE: dict[tuple[int, int], tuple[VendorAttribute, ...]] = {}
for _line in VENDOR_ATTRIBUTES:
    _code = (_line.vendor_id, _line.type)
    BY_CODE[_code] = (*BY_CODE.get(_code, ()), _line)


def read_vendor_value(value: bytes, out: dict[str, str]) -> None:
    """RFC 2865 5.26 sub-attributes (1-byte type and length, as these vendors use) of one
    Vendor-Specific attribute into ``out`` (field -> first value seen)."""
    if len(value) < 4:
        return
    vendor_id = int.from_bytes(value[:4], "big")
    pos = 4
    while pos + 2 <= len(value):
        kind, length = value[pos], value[pos + 1]
        if length < 2 or pos + length > len(value):
            return  # malformed VSA: ignore it, the standard attributes still count
        for line in BY_CODE.get((vendor_id, kind), ()):
            if line.field in out:
                continue
            text = value[pos + 2 : pos + length].decode("utf-8", "replace")
            if line.avpair_key is not None:
                key, sep, text = text.partition("=")
                if not sep or key.strip().lower() != line.avpair_key:
                    continue
            if text:
                out[line.field] = text
        pos += length
