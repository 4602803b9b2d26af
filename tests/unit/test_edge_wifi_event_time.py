"""RADIUS event time and identity: Event-Timestamp, Acct-Delay-Time, retransmissions.

A NAS that gets no answer retransmits; RFC 2866 makes it update Acct-Delay-Time, which
gives the packet a new identifier and authenticator. Across a restart of the agent such a
copy used to become a second event (new id, arrival-based event time): the raw table
stored the report twice and the session's last-seen moved forward.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyrad.packet import AccountingRequest, AcctPacket

from edge.wifi.agent import WifiAgent
from edge.wifi.config import load_config
from edge.wifi.radius import RadiusAccountingAdapter
from edge.wifi.radius_parse import load_dictionary
from tests.support.edge_wifi_support import RADIUS_SECRET, ListSink, write_agent_config
from tests.support.radius_restarts import RADIUS_BLOCK, queued_after_restarts, send_udp


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


async def test_retransmission_with_updated_delay_after_restart_is_the_identical_event(
    tmp_path: Path,
) -> None:
    """With Event-Timestamp: event time = Event-Timestamp - Acct-Delay-Time, same id."""
    stamp = int(time.time()) - 600
    first = _raw(42, "Interim-Update", Event_Timestamp=stamp, Acct_Session_Time=60)
    again = _raw(
        43, "Interim-Update", Event_Timestamp=stamp + 4, Acct_Delay_Time=4, Acct_Session_Time=60
    )
    *_, rows = await queued_after_restarts(tmp_path, [first, again])
    assert len(rows) == 1, rows
    expected = datetime.fromtimestamp(stamp, UTC)
    assert datetime.fromisoformat(str(rows[0]["event_time"])) == expected


async def test_retransmission_without_event_timestamp_keeps_the_first_receipt(
    tmp_path: Path,
) -> None:
    """Without Event-Timestamp the first receipt (remembered in the outbox) stands."""
    first = _raw(42, "Stop", Acct_Session_Time=120, Acct_Input_Octets=2000)
    again = _raw(43, "Stop", Acct_Session_Time=120, Acct_Input_Octets=2000, Acct_Delay_Time=1)
    after_first, after_again = await queued_after_restarts(tmp_path, [first, again])
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
            assert await send_udp(radius.port, raw) is not None
        stamped, skewed = sink.events
        assert stamped.event_time == datetime.fromtimestamp(now - 3610, UTC)  # type: ignore[attr-defined]
        # Beyond max_clock_skew_s: arrival - Acct-Delay-Time.
        arrival = skewed.event_time + timedelta(seconds=10)  # type: ignore[attr-defined]
        assert abs((arrival - datetime.now(UTC)).total_seconds()) < 5
    finally:
        await agent.stop()
