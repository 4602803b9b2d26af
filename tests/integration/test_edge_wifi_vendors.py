"""Interop: radclient speaking as each vendor's controller (Debian freeradius dictionaries).

Measured before: Cisco dotted MACs in Called-Station-Id were dropped as ``unknown_ap``,
Calling-Station-Id ``MAC:SSID`` was rejected, and the SSID was lost when it only came in a
vendor attribute (Aruba-Essid-Name, Ruckus-SSID).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge.wifi.agent import WifiAgent
from edge.wifi.config import load_config
from edge.wifi.radius import RadiusAccountingAdapter
from schemas.wifi import WifiSessionStartV1
from tests.support.edge_wifi_support import RADIUS_SECRET, ListSink, radclient, write_agent_config

SSID = "HCMC Free WiFi"
AP1, AP2 = "ben-thanh-market-ap01", "ben-thanh-market-ap02"
#: vendor -> (attributes as the controller sends them, expected AP).
VENDORS = {
    "aruba": ('Called-Station-Id = "02005E100002", Calling-Station-Id = "daa119000001", '
              f'Aruba-Essid-Name = "{SSID}", Aruba-AP-Group = "hcmc"', AP2),
    "cisco-wlc": ('Called-Station-Id = "0200.5e10.0002:HCMC Free WiFi", '
                  'Calling-Station-Id = "daa1.1900.0001", Airespace-Wlan-Id = 1', AP2),
    "ruckus": ('Called-Station-Id = "02-00-5E-10-00-02", '
               f'Calling-Station-Id = "DA-A1-19-00-00-01", Ruckus-SSID = "{SSID}"', AP2),
    "mikrotik": ('Called-Station-Id = "hotspot1", NAS-Identifier = "btm-ap01", '
                 'Calling-Station-Id = "DA:A1:19:00:00:01", Mikrotik-Realm = "hcmc"', AP1),
    "unifi": ('Called-Station-Id = "02-00-5E-10-00-01:HCMC Free WiFi", '
              'Calling-Station-Id = "DA-A1-19-00-00-01;HCMC Free WiFi"', AP1),
    "meraki": ('Called-Station-Id = "02-00-5e-10-00-01:HCMC Free WiFi", '
               'Calling-Station-Id = "DA-A1-19-00-00-01", Meraki-Device-Name = "btm-ap01"', AP1),
}  # fmt: skip


@pytest.mark.parametrize("vendor", sorted(VENDORS))
async def test_vendor_accounting_start_becomes_a_session(tmp_path: Path, vendor: str) -> None:
    attrs, ap = VENDORS[vendor]
    sink = ListSink()
    radius_block = "radius:\n  host: 127.0.0.1\n  port: 0\n"
    agent = WifiAgent(load_config(write_agent_config(tmp_path, 1, radius=radius_block)), sink)
    await agent.start()
    try:
        radius = agent.adapters[0]
        assert isinstance(radius, RadiusAccountingAdapter)
        packet = f'Acct-Status-Type = Start, Acct-Session-Id = "{vendor}-1", {attrs}'
        out = await asyncio.to_thread(radclient, radius.port, [packet], RADIUS_SECRET)
        assert "Received Accounting-Response" in out, out
        assert radius.stats.drops == {}
        (start,) = sink.events
        assert isinstance(start, WifiSessionStartV1)
        # A MikroTik hotspot names no SSID (Called-Station-Id is the hotspot server).
        assert (start.data.ap, start.data.ssid) == (ap, None if vendor == "mikrotik" else SSID)
        # Same phone, every spelling: one pseudonym (locally administered: randomised MAC).
        pseudo = agent.emitter.pseudonymiser.client_id("DA:A1:19:00:00:01")
        assert start.data.client_id == pseudo and start.data.randomized_mac
    finally:
        await agent.stop()


#: Reports that name the AP (and SSID) only in vendor attributes or a non-MAC station id, as
#: each vendor can be configured to: vendor -> (attributes, expected AP, expected SSID).
#: Every line of edge.wifi.vendors.VENDOR_ATTRIBUTES is used at least once.
NAMED = {
    "aruba-location-id": ('Aruba-Location-Id = "btm-ap02", '
                          f'Aruba-Essid-Name = "{SSID}"', AP2, SSID),
    "aruba-ap-group": ('Aruba-AP-Group = "btm-ap01"', AP1, None),
    "cisco-c9800-avpair": ('Called-Station-Id = "0200.5e10.0002", '
                           'Cisco-AVPair = "method=dot1x", '
                           f'Cisco-AVPair = "cisco-wlan-ssid={SSID}"',
                           AP2, SSID),
    "cisco-ios-avpair": (f'NAS-Identifier = "btm-ap01", Cisco-AVPair = "ssid={SSID}"', AP1, SSID),
    "cisco-wlc-ap-name-ssid": (f'Called-Station-Id = "btm-ap01:{SSID}"', AP1, SSID),
    "ruckus-location": (f'Ruckus-Location = "btm-ap01", Ruckus-Wlan-Name = "{SSID}"', AP1, SSID),
    "ruckus-zone": (f'Ruckus-Zone-Name = "btm-ap02", Ruckus-SSID = "{SSID}"', AP2, SSID),
    "meraki-ap-name": ('Meraki-Ap-Name = "btm-ap02", Meraki-Network-Name = "HCMC"', AP2, None),
    "meraki-network-name": ('Meraki-Network-Name = "btm-ap01"', AP1, None),
    "mikrotik-hotspot-name": ('Called-Station-Id = "btm-ap01"', AP1, None),
    "mikrotik-wispr-location": ('Called-Station-Id = "hotspot1", '
                                'WISPr-Location-Name = "btm-ap02"', AP2, None),
    "wispr-location-id": ('WISPr-Location-ID = "btm-ap01"', AP1, None),
    "ubiquiti-unifi": (f'Called-Station-Id = "02:00:5E:10:00:02:{SSID}"', AP2, SSID),
}  # fmt: skip


async def test_vendor_attributes_name_the_ap_and_ssid(tmp_path: Path) -> None:
    sink = ListSink()
    radius_block = "radius:\n  host: 127.0.0.1\n  port: 0\n"
    agent = WifiAgent(load_config(write_agent_config(tmp_path, 1, radius=radius_block)), sink)
    await agent.start()
    try:
        radius = agent.adapters[0]
        assert isinstance(radius, RadiusAccountingAdapter)
        packets = [
            f'Acct-Status-Type = Start, Acct-Session-Id = "{case}", '
            f'Calling-Station-Id = "DA-A1-19-00-00-01", {attrs}'
            for case, (attrs, _, _) in NAMED.items()
        ]
        out = await asyncio.to_thread(radclient, radius.port, packets, RADIUS_SECRET, "-p", "1")
        assert out.count("Received Accounting-Response") == len(NAMED), out
        assert radius.stats.drops == {}
        got = {
            case: (e.data.ap, e.data.ssid)  # type: ignore[attr-defined]
            for case, e in zip(NAMED, sink.events, strict=True)
        }
        assert got == {case: (ap, ssid) for case, (_, ap, ssid) in NAMED.items()}
    finally:
        await agent.stop()


def test_every_vendor_line_is_exercised_and_in_debian_dictionaries() -> None:
    from edge.wifi.vendors import VENDOR_ATTRIBUTES

    used = " ".join([a for a, _, _ in NAMED.values()] + [a for a, _ in VENDORS.values()])
    for line in VENDOR_ATTRIBUTES:
        key = f'{line.name} = "{line.avpair_key}=' if line.avpair_key else f"{line.name} ="
        assert key in used, line
        dictionary = Path(f"/usr/share/freeradius/dictionary.{line.vendor.lower()}").read_text()
        rows = [r.split()[1:3] for r in dictionary.splitlines() if r.startswith("ATTRIBUTE")]
        assert [line.name, str(line.type)] in rows, line
    assert {v.vendor for v in VENDOR_ATTRIBUTES} >= {"Aruba", "Cisco", "Ruckus", "Meraki"}
