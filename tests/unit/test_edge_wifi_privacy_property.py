"""Property: no raw MAC or IP a controller sends ever leaves the agent, in any spelling.

Hypothesis generates Acct-Session-Ids and User-Names built the way vendors build them
(Aruba ``guest/10.20.1.99/<mac>``, a MAC run into hex digits, Cisco dotted MACs, IPv6) and
Meraki bodies carrying MACs and IPs; a real agent receives them over UDP and HTTP. Then the
MQTT payloads (the outbox the link publishes from, read as raw SQLite files), every log
record and the ``/metrics`` page are searched for each identifier in every spelling.

Measured before: ``guest/10.20.1.99/<mac>`` published the IP, and ``<mac>1733377000``
(hex right after the MAC) published the raw MAC; the scrubber needed a non-hex neighbour.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrad.packet import AccountingRequest, AcctPacket

from edge.link import LinkIdentity, MqttLink, MqttLinkConfig
from edge.wifi.agent import WifiAgent
from edge.wifi.config import load_config
from edge.wifi.meraki import MerakiScanningAdapter
from edge.wifi.radius import RadiusAccountingAdapter
from edge.wifi.radius_parse import load_dictionary
from schemas.topics import DeviceKind
from tests.support.edge_wifi_support import RADIUS_SECRET, TEST_APS, write_agent_config

BLOCKS = {
    "radius": "radius:\n  host: 127.0.0.1\n  port: 0\n",
    "meraki": "meraki:\n  enabled: true\n  host: 127.0.0.1\n  port: 0\n  validator: v\n"
    "  sessions: all\n",
}
AP_MAC = TEST_APS["ben-thanh-market-ap01"][0]


def spellings(mac: bytes) -> list[str]:
    """Every way network gear writes a MAC (colon, dash, Cisco dot, bare; both cases)."""
    h = mac.hex()
    pairs = [h[i : i + 2] for i in range(0, 12, 2)]
    out = [":".join(pairs), "-".join(pairs), ".".join(h[i : i + 4] for i in range(0, 12, 4)), h]
    return out + [s.upper() for s in out]


def ip_spellings(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[str]:
    return [ip.compressed, ip.exploded]


macs = st.binary(min_size=6, max_size=6).filter(lambda b: b.hex() != bytes(6).hex())
ipv4s = st.builds(ipaddress.IPv4Address, st.integers(0x0B000000, 0xDF000000))
ipv6s = st.builds(ipaddress.IPv6Address, st.integers(1 << 125, (1 << 128) - 1))
separators = st.sampled_from(["/", "_", "-", ":", ";", "", "@", " ", "|"])
hex_tail = st.text("0123456789abcdef", max_size=12)


@st.composite
def identity_text(draw: st.DrawFn) -> tuple[str, list[str]]:
    """(free text embedding identifiers, the identifiers in every spelling)."""
    mac, v4, v6 = draw(macs), draw(ipv4s), draw(ipv6s)
    parts = {
        "mac": draw(st.sampled_from(spellings(mac))),
        "v4": str(v4),
        "v6": draw(st.sampled_from(ip_spellings(v6))),
        "user": draw(st.sampled_from(["guest", "alice@hcmc.vn", "", "00000001"])),
    }
    order = draw(st.permutations(list(parts)))
    sep = draw(separators)
    text = sep.join(parts[k] for k in order) + draw(hex_tail)
    secrets = spellings(mac) + ip_spellings(v4) + ip_spellings(v6)
    return text[:240], secrets


class Running:
    """One agent (RADIUS + Meraki) in a thread, publishing into an outbox we can read."""

    def __init__(self, tmp: Path) -> None:
        config = load_config(write_agent_config(tmp, 1, **BLOCKS))
        self.link = MqttLink(  # never started: every event stays in the outbox file
            MqttLinkConfig(port=1, outbox_path=tmp / "outbox.sqlite"),
            LinkIdentity("ben-thanh-market", "btm-wifi", DeviceKind.WIFI),
        )
        self.outbox = tmp / "outbox.sqlite"
        self.agent = WifiAgent(config, self.link)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.agent.start(), self.loop).result(30)
        radius, meraki = self.agent.adapters
        assert isinstance(radius, RadiusAccountingAdapter)
        assert isinstance(meraki, MerakiScanningAdapter)
        self.radius, self.meraki = radius, meraki

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.agent.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.link.outbox.close()

    def exposed(self) -> str:
        """Everything that left the agent's hands: outbox files, and /metrics."""
        blobs = [p.read_bytes() for p in self.outbox.parent.glob("outbox.sqlite*")]
        assert self.agent.observability is not None
        with urllib.request.urlopen(f"{self.agent.observability.url}/metrics") as resp:
            blobs.append(resp.read())
        return b"\n".join(blobs).decode("latin-1").lower()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    r = Running(tmp_path)
    yield r
    r.stop()


def _radius(port: int, ident: int, session_id: str, user: str, calling: str) -> None:
    pkt = AcctPacket(
        code=AccountingRequest, id=ident, secret=RADIUS_SECRET.encode(), dict=load_dictionary()
    )
    pkt["Acct-Status-Type"] = "Start"
    pkt["Acct-Session-Id"] = session_id
    pkt["User-Name"] = user
    pkt["Calling-Station-Id"] = calling
    pkt["Called-Station-Id"] = f"{AP_MAC}:HCMC Free WiFi"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(bytes(pkt.RequestPacket()), ("127.0.0.1", port))
        assert s.recv(4096)  # answered = durably in the outbox


def _meraki(port: int, path: str, client: str, free: str, v4: str, v6: str) -> dict[str, int]:
    obs = {
        "clientMac": client,
        "ipv4": f"/{v4}",
        "ipv6": v6,
        "manufacturer": free,
        "os": free,
        "ssid": "HCMC Free WiFi",
        "latestRecord": {"time": "2026-12-05T10:00:00Z", "nearestApMac": AP_MAC,
                         "nearestApRssi": -60},
    }  # fmt: skip
    body = {"version": "3.0", "secret": "", "type": "WiFi",
            "data": {"networkId": "N_1", "observations": [obs, {"clientMac": free}]}}  # fmt: skip
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return dict(json.loads(resp.read()))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    session=identity_text(),
    user=identity_text(),
    client=macs,
    v4=ipv4s,
    v6=ipv6s,
    ident=st.integers(0, 255),
)
def test_no_raw_identifier_leaves_the_agent(
    running: Running,
    caplog: pytest.LogCaptureFixture,
    session: tuple[str, list[str]],
    user: tuple[str, list[str]],
    client: bytes,
    v4: ipaddress.IPv4Address,
    v6: ipaddress.IPv6Address,
    ident: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    client_spelling = spellings(client)[ident % 8]
    _radius(running.radius.port, ident, session[0], user[0], client_spelling)
    reply = _meraki(running.meraki.port, running.meraki.path, client_spelling, session[0],
                    str(v4), v6.compressed)  # fmt: skip
    assert reply == {"accepted": 1, "received": 2}
    exposed = running.exposed() + "\n".join(r.getMessage() for r in caplog.records).lower()
    secret = session[1] + user[1] + spellings(client) + ip_spellings(v4) + ip_spellings(v6)
    leaked = [s for s in secret if s.lower() in exposed]
    assert not leaked, f"raw identifiers left the agent: {leaked}"
