"""RADIUS event time and identity: Event-Timestamp, Acct-Delay-Time, retransmissions.

A NAS that gets no answer retransmits; RFC 2866 makes it update Acct-Delay-Time, which
gives the packet a new identifier and authenticator. Across a restart of the agent such a
copy used to become a second event (new id, arrival-based event time): the raw table
stored the report twice and the session's last-seen moved forward.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyrad.packet import AccountingRequest, AccountingResponse, AcctPacket

from edge.link import LinkIdentity, MqttLink, MqttLinkConfig
from edge.wifi.agent import WifiAgent
from edge.wifi.config import load_config
from edge.wifi.radius import RadiusAccountingAdapter
from edge.wifi.radius_parse import load_dictionary
from schemas.topics import DeviceKind
from tests.support.edge_wifi_support import RADIUS_SECRET, ListSink, write_agent_config

RADIUS_BLOCK = "radius:\n  host: 127.0.0.1\n  port: 0\n  max_clock_skew_s: 7200\n"


def _raw(identifier: int, status: str, session: str = "ts-1", **attrs: int) -> bytes:
    pkt = AcctPacket(
        code=AccountingRequest, id=identifier, secret=RADIUS_SECRET.encode(), dict=load_dictionary()
    )
    pkt["Acct-Status-Type"] = status
    pkt["Acct-Session-Id"] = session
    pkt["Calling-Station-Id"] = "00-1A-2B-3C-4D-5E"
    pkt["NAS-Identifier"] = "btm-ap01"
    for name, value in attrs.items():
        pkt[name.replace("_", "-")] = value
    return bytes(pkt.RequestPacket())


async def _send(port: int, data: bytes) -> bytes | None:
    def go() -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            s.sendto(data, ("127.0.0.1", port))
            try:
                return s.recv(4096)
            except TimeoutError:
                return None

    return await asyncio.to_thread(go)


async def _queued_after_restarts(
    tmp_path: Path, packets: list[bytes]
) -> list[list[dict[str, object]]]:
    """Send each packet to a fresh agent (restart in between) over one outbox; the queued
    rows after each packet."""
    cfg = MqttLinkConfig(port=1, outbox_path=tmp_path / "outbox.sqlite")
    ident = LinkIdentity("ben-thanh-market", "btm-wifi", DeviceKind.WIFI)
    config = load_config(write_agent_config(tmp_path, 1, radius=RADIUS_BLOCK))
    history: list[list[dict[str, object]]] = []
    for raw in packets:
        link = MqttLink(cfg, ident)  # never started: rows stay in the outbox to count
        agent = WifiAgent(config, link)
        await agent.start()
        try:
            radius = agent.adapters[0]
            assert isinstance(radius, RadiusAccountingAdapter)
            reply = await _send(radius.port, raw)
            assert reply is not None and reply[0] == AccountingResponse
        finally:
            await agent.stop()
        history.append([json.loads(q.payload) for q in link.outbox.peek()])
        link.outbox.close()
        await asyncio.sleep(1.1)  # a later arrival: another event time if it were re-built
    return history


async def test_retransmission_with_updated_delay_after_restart_is_the_identical_event(
    tmp_path: Path,
) -> None:
    """With Event-Timestamp: event time = Event-Timestamp - Acct-Delay-Time, same id."""
    stamp = int(time.time()) - 600
    first = _raw(42, "Interim-Update", Event_Timestamp=stamp, Acct_Session_Time=60)
    again = _raw(
        43, "Interim-Update", Event_Timestamp=stamp + 4, Acct_Delay_Time=4, Acct_Session_Time=60
    )
    *_, rows = await _queued_after_restarts(tmp_path, [first, again])
    assert len(rows) == 1, rows
    expected = datetime.fromtimestamp(stamp, UTC)
    assert datetime.fromisoformat(str(rows[0]["event_time"])) == expected


async def test_retransmission_without_event_timestamp_keeps_the_first_receipt(
    tmp_path: Path,
) -> None:
    """Without Event-Timestamp the first receipt (remembered in the outbox) stands."""
    first = _raw(42, "Stop", Acct_Session_Time=120, Acct_Input_Octets=2000)
    again = _raw(43, "Stop", Acct_Session_Time=120, Acct_Input_Octets=2000, Acct_Delay_Time=1)
    after_first, after_again = await _queued_after_restarts(tmp_path, [first, again])
    # The second arrives >= 1.1 s later: re-built, its time (arrival - 1 s) would differ.
    assert len(after_again) == 1 and after_again == after_first, (after_first, after_again)


async def test_event_timestamp_is_honoured_within_the_skew_bound(tmp_path: Path) -> None:
    sink = ListSink()
    agent = WifiAgent(load_config(write_agent_config(tmp_path, 1, radius=RADIUS_BLOCK)), sink)
    await agent.start()
    try:
        radius = agent.adapters[0]
        assert isinstance(radius, RadiusAccountingAdapter)
        now = int(time.time())
        hour_ago = _raw(1, "Start", "a", Event_Timestamp=now - 3600, Acct_Delay_Time=10)
        in_1970 = _raw(2, "Start", "b", Event_Timestamp=86400, Acct_Delay_Time=10)
        for raw in (hour_ago, in_1970):
            assert await _send(radius.port, raw) is not None
        stamped, skewed = sink.events
        assert stamped.event_time == datetime.fromtimestamp(now - 3610, UTC)  # type: ignore[attr-defined]
        # Beyond max_clock_skew_s: arrival - Acct-Delay-Time.
        arrival = skewed.event_time + timedelta(seconds=10)  # type: ignore[attr-defined]
        assert abs((arrival - datetime.now(UTC)).total_seconds()) < 5
    finally:
        await agent.stop()
