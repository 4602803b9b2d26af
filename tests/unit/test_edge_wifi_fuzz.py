"""Fuzz the RADIUS accounting parser: no input may raise (10,000+ hypothesis cases).

Mutated packets are re-signed with the right secret so the fuzzer also reaches attribute
decoding, not just the authenticator check. The agent's lean decoder is also checked
against pyrad's generic one (the reference) on the same corpus: same authenticator verdict,
same decoded values or failures, byte-identical Accounting-Response.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrad.packet import AccountingRequest, AccountingResponse, AcctPacket

from device_configs.loader import load_device_configs
from device_configs.wifi import load_secrets
from edge.wifi.inventory import Inventory
from edge.wifi.radius_parse import (
    _USED,
    Accepted,
    Rejected,
    Request,
    load_dictionary,
    parse_accounting,
    read_attributes,
    reply_packet,
    structure_problem,
)
from tests.support.edge_wifi_support import RADIUS_SECRET, write_device_configs

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


def _decoded(read: object) -> object:
    try:
        return ("ok", read())  # type: ignore[operator]
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        return ("error", type(exc).__name__ == "KeyError")


@pytest.mark.slow
@settings(
    max_examples=1_500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_lean_decoder_matches_pyrad(data: bytes) -> None:
    if len(data) > 4096 or structure_problem(data) is not None or data[0] != AccountingRequest:
        # Never decoded: parse_accounting rejects it first. A Status-Server (code 12) gets
        # no answer from us, while pyrad signs its reply with a Message-Authenticator.
        return
    secret = RADIUS_SECRET.encode()
    ref = AcctPacket(packet=data, secret=secret, dict=DICT)
    ours, proxy_state = read_attributes(data, DICT)
    frame = data[: int.from_bytes(data[2:4], "big")]  # what parse_accounting verifies
    ok = hashlib.md5(frame[:4] + bytes(16) + frame[20:] + secret).digest() == frame[4:20]
    assert ok == ref.VerifyAcctRequest()
    for name in _USED:
        assert _decoded(lambda n=name: ours.one(n)) == _decoded(
            lambda n=name: (ref.get(n) or [None])[0]
        ), name
    reply = ref.CreateReply()
    reply.code = AccountingResponse
    assert reply_packet(Request(data[1], data[4:20], secret, proxy_state)) == reply.ReplyPacket()


def test_reply_copies_proxy_state_like_pyrad(inventory: Inventory) -> None:
    framed = VALID + bytes([33, 6]) + b"ps-1" + bytes([33, 5]) + b"ps2"
    framed = _resign(framed[:2] + len(framed).to_bytes(2, "big") + framed[4:])
    result = parse_accounting(framed, "127.0.0.1", datetime.now(UTC), inventory, DICT)
    assert isinstance(result, Accepted) and result.request.proxy_state == (b"ps-1", b"ps2")
    ref = AcctPacket(packet=framed, secret=RADIUS_SECRET.encode(), dict=DICT).CreateReply()
    ref.code = AccountingResponse
    assert reply_packet(result.request) == ref.ReplyPacket()


def test_a_status_server_gets_no_answer(inventory: Inventory) -> None:
    # RFC 5997 support is optional; we do not claim it, so a Status-Server is refused
    # unanswered (an answer would need a Message-Authenticator, as pyrad's has).
    status_server = _resign(bytes([12]) + VALID[1:])
    result = parse_accounting(status_server, "127.0.0.1", datetime.now(UTC), inventory, DICT)
    assert result == Rejected("not_accounting_request", reply=False)
