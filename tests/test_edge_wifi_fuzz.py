"""Fuzz the RADIUS accounting parser: no input may raise (10,000+ hypothesis cases).

Mutated packets are re-signed with the right secret so the fuzzer also reaches attribute
decoding, not just the authenticator check.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from edge_wifi_support import RADIUS_SECRET, write_device_configs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrad.packet import AccountingRequest, AcctPacket

from device_configs.loader import load_device_configs
from device_configs.wifi import load_secrets
from edge.wifi.inventory import Inventory
from edge.wifi.radius_parse import Accepted, Rejected, load_dictionary, parse_accounting

DICT = load_dictionary()


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    root: Path = tmp_path_factory.mktemp("fuzz")
    cfg, secrets = write_device_configs(root)
    return Inventory(load_device_configs(cfg), {"ben-thanh-market"}, load_secrets(secrets))


def _valid() -> bytes:
    pkt = AcctPacket(code=AccountingRequest, id=7, secret=RADIUS_SECRET.encode(), dict=DICT)
    pkt["Acct-Status-Type"] = "Interim-Update"
    pkt["Acct-Session-Id"] = "s-1"
    pkt["Calling-Station-Id"] = "00-1A-2B-3C-4D-5E"
    pkt["Called-Station-Id"] = "02-00-5E-10-00-01:HCMC Free WiFi"
    pkt["Acct-Input-Octets"] = 10
    pkt["Acct-Input-Gigawords"] = 1
    pkt["Acct-Delay-Time"] = 3
    return bytes(pkt.RequestPacket())


VALID = _valid()


def _resign(data: bytes) -> bytes:
    """Recompute the Accounting-Request authenticator (RFC 2866 section 3)."""
    if len(data) < 20:
        return data
    auth = hashlib.md5(data[:4] + bytes(16) + data[20:] + RADIUS_SECRET.encode()).digest()
    return data[:4] + auth + data[20:]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "attr"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(max_size=12))
        else:  # append an arbitrary well-framed attribute (unknown types, odd lengths)
            value = draw(st.binary(max_size=20))
            data += bytes([draw(st.integers(0, 255)), len(value) + 2]) + value
            data[2:4] = len(data).to_bytes(2, "big")
    raw = bytes(data)
    return _resign(raw) if draw(st.booleans()) else raw


packets = st.one_of(st.binary(max_size=300), mutated())


@pytest.mark.slow
@settings(
    max_examples=10_000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(packets)
def test_parser_never_raises(inventory: Inventory, data: bytes) -> None:
    result = parse_accounting(data, "127.0.0.1", datetime.now(UTC), inventory, DICT)
    assert isinstance(result, Accepted | Rejected | tuple)
    if isinstance(result, Accepted):
        assert result.facts.site == "ben-thanh-market"


def test_valid_packet_is_accepted(inventory: Inventory) -> None:
    result = parse_accounting(VALID, "127.0.0.1", datetime.now(UTC), inventory, DICT)
    assert isinstance(result, Accepted)
    assert result.facts.rx_bytes == (1 << 32) + 10
    assert result.facts.ap == "ben-thanh-market-ap01"
