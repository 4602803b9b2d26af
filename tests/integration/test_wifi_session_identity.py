"""Session identity = (NAS, Acct-Session-Id, pseudonymous client, start), end to end from
RADIUS packets to the rows the occupancy worker stores.

Measured before (issue 11): sessions were merged by (site, Acct-Session-Id), so the same id
from a second NAS at the site (``00000001`` is common) or reused after a Stop hid the new
association and kept the old one alive. Here two NASes of one site send the same id, and
one of them reuses it for the same client after a Stop: three stored sessions.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from pyrad.packet import AccountingRequest, AcctPacket

from edge.wifi.agent import WifiAgent
from edge.wifi.config import load_config
from edge.wifi.radius import RadiusAccountingAdapter
from edge.wifi.radius_parse import load_dictionary
from stream.wifi.sink import OccupancySink
from tests.support.edge_wifi_support import RADIUS_SECRET, ListSink, write_agent_config

pytestmark = pytest.mark.integration

NAS_A, NAS_B = "127.0.0.1", "127.0.0.2"
X, Y = "02-00-00-AA-00-01", "02-00-00-BB-00-02"


def _packet(status: str, mac: str, at: datetime, ident: int, **extra: int) -> bytes:
    pkt = AcctPacket(
        code=AccountingRequest, id=ident, secret=RADIUS_SECRET.encode(), dict=load_dictionary()
    )
    pkt["Acct-Status-Type"] = status
    pkt["Acct-Session-Id"] = "00000001"
    pkt["Calling-Station-Id"] = mac
    pkt["NAS-Identifier"] = "btm-ap01"
    pkt["Event-Timestamp"] = int(at.timestamp())
    for name, value in extra.items():
        pkt[name.replace("_", "-")] = value
    return bytes(pkt.RequestPacket())


def _exchange(port: int, source: str, packet: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(10)
        s.sendto(packet, ("127.0.0.1", port))
        s.recv(4096)  # answered: the event is in the sink


async def test_same_id_on_two_nases_and_reuse_after_stop_are_separate_sessions(
    tmp_path: Path, database_url: str
) -> None:
    cfg = write_agent_config(tmp_path, 1, radius="radius:\n  host: 127.0.0.1\n  port: 0\n")
    sites = tmp_path / "device_configs" / "sites.yaml"
    sites.write_text(
        sites.read_text().replace(
            "    secret: secret:radius-btm\n",
            f"    secret: secret:radius-btm\n  - ip: {NAS_B}\n    secret: secret:radius-btm\n",
        )
    )
    sink = ListSink()
    agent = WifiAgent(load_config(cfg), sink)
    await agent.start()
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=240)
    try:
        radius = agent.adapters[0]
        assert isinstance(radius, RadiusAccountingAdapter)
        sequence = [
            (NAS_A, _packet("Start", X, t0, 1)),
            (NAS_B, _packet("Start", Y, t0 + timedelta(seconds=5), 1)),
            (NAS_A, _packet("Stop", X, t0 + timedelta(seconds=60), 2, Acct_Session_Time=60)),
            (NAS_A, _packet("Start", X, t0 + timedelta(seconds=120), 3)),
            (
                NAS_A,
                _packet("Interim-Update", X, t0 + timedelta(seconds=180), 4, Acct_Session_Time=60),
            ),
        ]
        for source, packet in sequence:
            await asyncio.to_thread(_exchange, radius.port, source, packet)
    finally:
        await agent.stop()
    assert len(sink.events) == 5, radius.stats.drops

    conn = await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, options="-c timezone=UTC"
    )
    try:
        occupancy = OccupancySink(conn, timedelta(minutes=5))
        await occupancy.write(sink.events)  # type: ignore[arg-type]
        await occupancy.write(sink.events)  # a replay changes nothing
        cur = await conn.execute(
            "SELECT session_start, started_at, last_seen, ended_at FROM wifi_sessions "
            "ORDER BY session_start, started_at"
        )
        rows = await cur.fetchall()
    finally:
        await conn.close()
    s = timedelta(seconds=1)
    assert rows == [
        (t0, t0, t0 + 60 * s, t0 + 60 * s),  # NAS A, first association: stopped
        (t0 + 5 * s, t0 + 5 * s, t0 + 5 * s, None),  # NAS B, same id: its own session
        (t0 + 120 * s, t0 + 120 * s, t0 + 180 * s, None),  # NAS A, id reused after the Stop
    ]
