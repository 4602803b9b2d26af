"""A report whose commit failed is handled, on its retransmission, as it was the first time.

Why: the agent tracks open sessions in memory to give each report its session's start (part
of the session's identity). That state changed before the outbox commit; when the commit
failed (measured in the chaos suite's full-disk fault), the Stop had already closed the
session, so its retransmission found nothing, was stored as another session, and the real
one stayed open: one rollup minute wrong after every such fault.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from pathlib import Path

from pyrad.packet import AccountingRequest, AcctPacket

from edge.wifi.agent import WifiAgent
from edge.wifi.config import load_config
from edge.wifi.radius import RadiusAccountingAdapter
from edge.wifi.radius_parse import load_dictionary
from schemas.wifi import WifiSessionStartV1, WifiSessionStopV1
from tests.support.edge_wifi_support import RADIUS_SECRET, ListSink, write_agent_config


class FailsOnFirstStop(ListSink):
    """The outbox's disk is full exactly when the first Stop is written."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = 0

    def submit(self, event: object) -> int:
        if isinstance(event, WifiSessionStopV1) and not self.failed:
            self.failed += 1
            raise OSError(28, "No space left on device")
        return super().submit(event)


def _packet(status: str, ident: int, at: datetime, **extra: int) -> bytes:
    pkt = AcctPacket(
        code=AccountingRequest, id=ident, secret=RADIUS_SECRET.encode(), dict=load_dictionary()
    )
    pkt["Acct-Status-Type"] = status
    pkt["Acct-Session-Id"] = "sess-1"
    pkt["Calling-Station-Id"] = "02-00-00-AA-00-01"
    pkt["NAS-Identifier"] = "btm-ap01"
    pkt["Event-Timestamp"] = int(at.timestamp())
    for name, value in extra.items():
        pkt[name.replace("_", "-")] = value
    return bytes(pkt.RequestPacket())


def _exchange(port: int, packet: bytes, tries: int) -> int:
    """Send until answered (a NAS retransmits the same bytes); returns the attempts made."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.connect(("127.0.0.1", port))
        for attempt in range(1, tries + 1):
            s.send(packet)
            try:
                s.recv(4096)
                return attempt
            except TimeoutError:
                continue
    raise AssertionError("never answered")


async def test_stop_retransmitted_after_a_failed_commit_closes_its_own_session(
    tmp_path: Path,
) -> None:
    sink = FailsOnFirstStop()
    block = "radius:\n  host: 127.0.0.1\n  port: 0\n"
    agent = WifiAgent(load_config(write_agent_config(tmp_path, 1, radius=block)), sink)
    await agent.start()
    try:
        radius = agent.adapters[0]
        assert isinstance(radius, RadiusAccountingAdapter)
        t0 = datetime.now(UTC).replace(microsecond=0)
        start = _packet("Start", 1, t0)
        stop = _packet("Stop", 2, t0, Acct_Session_Time=30)
        assert await asyncio.to_thread(_exchange, radius.port, start, 3) == 1
        assert await asyncio.to_thread(_exchange, radius.port, stop, 5) >= 2  # first one failed
    finally:
        await agent.stop()

    assert sink.failed == 1
    first, last = sink.events
    assert isinstance(first, WifiSessionStartV1) and isinstance(last, WifiSessionStopV1)
    assert last.data.session_id == first.data.session_id
    assert last.data.session_start == first.data.session_start == t0
