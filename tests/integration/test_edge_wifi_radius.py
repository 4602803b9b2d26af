"""RADIUS accounting adapter: real radclient in, contract events out; duplicates; bad packets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyrad.packet import AccountingRequest, AccountingResponse, AcctPacket

from edge.wifi.agent import WifiAgent
from edge.wifi.config import load_config
from edge.wifi.radius import RadiusAccountingAdapter
from edge.wifi.radius_parse import load_dictionary
from schemas.wifi import WifiSessionInterimV1, WifiSessionStartV1, WifiSessionStopV1
from tests.support.edge_wifi_support import (
    RADIUS_SECRET,
    ListSink,
    radclient,
    write_agent_config,
)
from tests.support.net import wait_until
from tests.support.radius_restarts import queued_after_restarts, send_udp

RADIUS_BLOCK = "radius:\n  host: 127.0.0.1\n  port: 0\n"


async def _agent(tmp_path: Path) -> tuple[WifiAgent, ListSink, RadiusAccountingAdapter]:
    sink = ListSink()
    agent = WifiAgent(load_config(write_agent_config(tmp_path, 1, radius=RADIUS_BLOCK)), sink)
    await agent.start()
    radius = agent.adapters[0]
    assert isinstance(radius, RadiusAccountingAdapter)
    return agent, sink, radius


def _packet(status: str, mac: str = "DA-A1-19-00-00-01", **attrs: str) -> str:
    fields = {
        "Acct-Status-Type": status,
        "Acct-Session-Id": '"sess-0001"',
        "Calling-Station-Id": f'"{mac}"',
        "Called-Station-Id": '"02-00-5E-10-00-02:HCMC Free WiFi"',
        "NAS-Identifier": '"controller-1"',
        "NAS-Port-Type": "Wireless-802.11",
        **attrs,
    }
    return ", ".join(f"{k} = {v}" for k, v in fields.items())


async def test_radclient_session_becomes_events(tmp_path: Path) -> None:
    agent, sink, radius = await _agent(tmp_path)
    try:
        before = datetime.now(UTC)
        packets = [
            _packet("Start"),
            _packet(
                "Interim-Update",
                **{
                    "Acct-Session-Time": "60",
                    "Acct-Input-Octets": "1000",
                    "Acct-Output-Octets": "5",
                    "Acct-Output-Gigawords": "1",
                },
            ),
            _packet(
                "Stop",
                **{
                    "Acct-Session-Time": "120",
                    "Acct-Terminate-Cause": "User-Request",
                    "Acct-Delay-Time": "30",
                    "Acct-Input-Octets": "2000",
                },
            ),
        ]
        out = await asyncio.to_thread(radclient, radius.port, packets, RADIUS_SECRET, "-p", "1")
        assert out.count("Received Accounting-Response") == 3, out
        start, interim, stop = sink.events
        assert isinstance(start, WifiSessionStartV1)
        assert isinstance(interim, WifiSessionInterimV1)
        assert isinstance(stop, WifiSessionStopV1)
        assert start.site == "ben-thanh-market" and start.device == "btm-wifi"
        assert start.data.ap == "ben-thanh-market-ap02"  # from the Called-Station-Id BSSID
        assert start.data.ssid == "HCMC Free WiFi"
        assert start.data.randomized_mac  # DA-... is locally administered
        assert start.data.client_id == stop.data.client_id and len(start.data.client_id) == 32
        assert interim.data.tx_bytes == (1 << 32) + 5 and interim.data.rx_bytes == 1000
        assert stop.data.terminate_cause == "User-Request" and stop.data.session_seconds == 120
        # Event time = arrival - Acct-Delay-Time.
        assert (
            before - timedelta(seconds=31)
            <= stop.event_time
            <= datetime.now(UTC) - timedelta(seconds=29)
        )
        assert "daa119" not in str([e.model_dump_json() for e in sink.events]).lower()
    finally:
        await agent.stop()


async def test_nas_identifier_maps_ap_and_unknown_ap_is_acked_and_counted(tmp_path: Path) -> None:
    agent, sink, radius = await _agent(tmp_path)
    try:
        pk = _packet("Start", **{"NAS-Identifier": '"btm-ap01"', "Called-Station-Id": '"x"'})
        unknown = _packet("Start", **{"Called-Station-Id": '"02-00-5E-99-99-99:X"'})
        out = await asyncio.to_thread(radclient, radius.port, [pk, unknown], RADIUS_SECRET)
        assert out.count("Received Accounting-Response") == 2, out
        assert [e.data.ap for e in sink.events] == ["ben-thanh-market-ap01"]  # type: ignore[attr-defined]
        assert radius.stats.drops == {"unknown_ap": 1}
    finally:
        await agent.stop()


async def test_wrong_secret_gets_no_reply_and_is_counted(tmp_path: Path) -> None:
    agent, sink, radius = await _agent(tmp_path)
    try:
        out = await asyncio.to_thread(
            radclient, radius.port, [_packet("Start")], "wrong-secret", "-r", "1", "-t", "1"
        )
        assert "Received Accounting-Response" not in out
        assert sink.events == []
        assert radius.stats.drops.get("bad_authenticator", 0) >= 1
    finally:
        await agent.stop()


def _raw(identifier: int, session: str = "dup-1") -> bytes:
    pkt = AcctPacket(
        code=AccountingRequest, id=identifier, secret=RADIUS_SECRET.encode(), dict=load_dictionary()
    )
    pkt["Acct-Status-Type"] = "Start"
    pkt["Acct-Session-Id"] = session
    pkt["Calling-Station-Id"] = "00-1A-2B-3C-4D-5E"
    pkt["NAS-Identifier"] = "btm-ap01"
    return bytes(pkt.RequestPacket())


async def test_retransmission_gives_one_event_but_two_replies(tmp_path: Path) -> None:
    agent, sink, radius = await _agent(tmp_path)
    try:
        raw = _raw(42)
        replies = [await send_udp(radius.port, raw) for _ in range(2)]
        assert all(r is not None and r[0] == AccountingResponse for r in replies)
        assert len(sink.events) == 1 and radius.stats.drops == {"duplicate": 1}
        await send_udp(radius.port, _raw(43))  # new identifier: a new report, not a retransmit
        assert len(sink.events) == 2
    finally:
        await agent.stop()


async def test_unknown_nas_and_garbage_are_dropped_with_reasons(tmp_path: Path) -> None:
    agent, sink, radius = await _agent(tmp_path)
    try:
        assert await send_udp(radius.port, _raw(1), src="127.0.0.2") is None
        assert await send_udp(radius.port, b"\x04\x01\x00") is None
        truncated_attr = bytearray(_raw(2))
        truncated_attr[21] = 200  # first attribute claims 200 bytes
        assert await send_udp(radius.port, bytes(truncated_attr)) is None
        wait_until(lambda: sum(radius.stats.drops.values()) == 3, 10, "3 drops")
        assert radius.stats.drops == {"unknown_nas": 1, "truncated": 1, "malformed": 1}
        assert sink.events == [] and radius.stats.packets == 3
    finally:
        await agent.stop()


@pytest.mark.parametrize("status", ["Accounting-On", "Accounting-Off"])
async def test_accounting_on_off_closes_the_nas_open_sessions(tmp_path: Path, status: str) -> None:
    """Measured: Accounting-On/Off were ignored, so after a controller reboot its clients
    stayed "present" until the session timeout."""
    agent, sink, radius = await _agent(tmp_path)
    try:
        packets = [
            _packet("Start", **{"Acct-Session-Id": '"00000001"'}),
            _packet("Start", "DA-A1-19-00-00-02", **{"Acct-Session-Id": '"00000002"'}),
            _packet("Stop", "DA-A1-19-00-00-02", **{"Acct-Session-Id": '"00000002"'}),
            f"Acct-Status-Type = {status}, NAS-Identifier = x",
        ]
        out = await asyncio.to_thread(radclient, radius.port, packets, RADIUS_SECRET, "-p", "1")
        assert out.count("Received Accounting-Response") == 4, out
        start_a, start_b, stop_b, closed = sink.events
        assert isinstance(closed, WifiSessionStopV1) and closed.data.terminate_cause == status
        assert closed.data.session_id == start_a.data.session_id  # type: ignore[attr-defined]
        assert closed.data.client_id == start_a.data.client_id  # type: ignore[attr-defined]
        assert stop_b.data.session_id == start_b.data.session_id  # type: ignore[attr-defined]
        assert radius.stats.drops == {}
    finally:
        await agent.stop()


async def test_an_id_reused_by_another_client_is_another_session(tmp_path: Path) -> None:
    """Measured: sessions merged by (site, Acct-Session-Id), so ``00000001`` reused by a
    new client after a NAS reboot hid the new client and kept the old one alive."""
    agent, sink, radius = await _agent(tmp_path)
    try:
        sid = {"Acct-Session-Id": '"00000001"'}
        packets = [_packet("Start", **sid), _packet("Start", "DA-A1-19-00-00-09", **sid)]
        out = await asyncio.to_thread(radclient, radius.port, packets, RADIUS_SECRET, "-p", "1")
        assert out.count("Received Accounting-Response") == 2, out
        first, second = sink.events
        assert first.data.session_id != second.data.session_id  # type: ignore[attr-defined]
        assert first.id != second.id  # type: ignore[attr-defined]
        assert "00000001" not in first.data.session_id  # type: ignore[attr-defined]
    finally:
        await agent.stop()


async def test_retransmission_after_an_agent_restart_is_not_a_second_event(
    tmp_path: Path,
) -> None:
    """The NAS re-sends a report the agent answered just before it restarted. The in-memory
    duplicate filter was gone, so the copy became a second event with the same id and a
    new arrival-based event time: stored twice, last-seen moved forward (measured: 200
    duplicate rows for 200 re-sent reports). The outbox now remembers queued ids."""
    *_, rows = await queued_after_restarts(tmp_path, [_raw(42), _raw(42)])  # before and after
    assert len(rows) == 1, f"{len(rows)} queued events"
