"""A report whose commit failed is handled, on its retransmission, as it was the first time.

Why: the agent tracks open sessions in memory to give each report its session's start (part
of the session's identity). That state changed before the outbox commit; when the commit
failed (measured in the chaos suite's full-disk fault), the Stop had already closed the
session, so its retransmission found nothing, was stored as another session, and the real
one stayed open: one rollup minute wrong after every such fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyrad.packet import AccountingRequest, AcctPacket

from edge.wifi.agent import WifiAgent
from edge.wifi.config import load_config
from edge.wifi.radius import RadiusAccountingAdapter
from edge.wifi.radius_parse import load_dictionary
from schemas.wifi import WifiSessionInterimV1, WifiSessionStartV1, WifiSessionStopV1
from tests.support.edge_wifi_support import RADIUS_SECRET, ListSink, write_agent_config


class FailsOnFirst(ListSink):
    """The outbox's disk is full exactly when the first event of one type is written."""

    def __init__(self, kind: type) -> None:
        super().__init__()
        self.kind = kind
        self.failed = 0

    def submit(self, event: object) -> int:
        if isinstance(event, self.kind) and not self.failed:
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


def _exchange(port: int, packet: bytes, tries: int, timeout: float = 0.5) -> int:
    """Send until answered (a NAS retransmits the same bytes); returns the attempts made."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        for attempt in range(1, tries + 1):
            s.send(packet)
            try:
                s.recv(4096)
                return attempt
            except TimeoutError:
                continue
    raise AssertionError("never answered")


@contextlib.asynccontextmanager
async def _radius_agent(tmp_path: Path, sink: ListSink) -> AsyncIterator[int]:
    """A Wi-Fi agent with only RADIUS, writing to ``sink``; yields its UDP port."""
    block = "radius:\n  host: 127.0.0.1\n  port: 0\n"
    agent = WifiAgent(load_config(write_agent_config(tmp_path, 1, radius=block)), sink)
    await agent.start()
    try:
        radius = agent.adapters[0]
        assert isinstance(radius, RadiusAccountingAdapter)
        yield radius.port
    finally:
        await agent.stop()


async def _start_unanswered(port: int, t0: datetime) -> bytes:
    """Send a Start whose commit fails (the sink refuses it): no answer comes. Returns the
    packet, for the NAS's retransmission."""
    start = _packet("Start", 1, t0)
    with pytest.raises(AssertionError):  # the first copy fails: unanswered
        await asyncio.to_thread(_exchange, port, start, 1, 0.3)
    return start


async def test_stop_retransmitted_after_a_failed_commit_closes_its_own_session(
    tmp_path: Path,
) -> None:
    sink = FailsOnFirst(WifiSessionStopV1)
    async with _radius_agent(tmp_path, sink) as port:
        t0 = datetime.now(UTC).replace(microsecond=0)
        start = _packet("Start", 1, t0)
        stop = _packet("Stop", 2, t0, Acct_Session_Time=30)
        assert await asyncio.to_thread(_exchange, port, start, 3) == 1
        assert await asyncio.to_thread(_exchange, port, stop, 5) >= 2  # first one failed

    assert sink.failed == 1
    first, last = sink.events
    assert isinstance(first, WifiSessionStartV1) and isinstance(last, WifiSessionStopV1)
    assert last.data.session_id == first.data.session_id
    assert last.data.session_start == first.data.session_start == t0


async def test_reports_that_overtake_their_start_stay_one_session(tmp_path: Path) -> None:
    """The Start's commit fails; the NAS's Interim is stored before the retransmitted Start
    (seen in the chaos suite's full-disk fault): Interim, Start and Stop are one session,
    with its start unknown, never two rows for one association."""
    sink = FailsOnFirst(WifiSessionStartV1)
    async with _radius_agent(tmp_path, sink) as port:
        t0 = datetime.now(UTC).replace(microsecond=0)
        start = await _start_unanswered(port, t0)
        interim = _packet("Interim-Update", 2, t0, Acct_Session_Time=10)
        assert await asyncio.to_thread(_exchange, port, interim, 3) == 1
        assert await asyncio.to_thread(_exchange, port, start, 3) == 1  # retransmitted
        stop = _packet("Stop", 3, t0, Acct_Session_Time=30)
        assert await asyncio.to_thread(_exchange, port, stop, 3) == 1

    kinds = [type(e) for e in sink.events]
    assert kinds == [WifiSessionInterimV1, WifiSessionStartV1, WifiSessionStopV1]
    assert len({e.data.session_id for e in sink.events}) == 1  # type: ignore[attr-defined]
    assert {e.data.session_start for e in sink.events} == {None}  # type: ignore[attr-defined]


async def test_a_start_that_comes_after_its_stop_joins_that_session(tmp_path: Path) -> None:
    """The Start's commit fails and the Stop is stored first (chaos suite, full disk): the
    retransmitted Start is that session's, not a new association of a reused id."""
    sink = FailsOnFirst(WifiSessionStartV1)
    async with _radius_agent(tmp_path, sink) as port:
        t0 = datetime.now(UTC).replace(microsecond=0)
        start = await _start_unanswered(port, t0)
        stop = _packet("Stop", 3, t0, Acct_Session_Time=30)
        assert await asyncio.to_thread(_exchange, port, stop, 3) == 1
        assert await asyncio.to_thread(_exchange, port, start, 3) == 1  # retransmitted

    assert [type(e) for e in sink.events] == [WifiSessionStopV1, WifiSessionStartV1]
    assert len({e.data.session_id for e in sink.events}) == 1  # type: ignore[attr-defined]
    assert {e.data.session_start for e in sink.events} == {None}  # type: ignore[attr-defined]
