"""A RADIUS reply is sent only once the report's event is committed to the outbox.

Why this matters: the NAS stops retransmitting a report once it is answered, so an answer
sent before the commit (the group commit batches many packets per transaction) would turn a
crash into a lost event. Here a burst of Starts is sent with 64 in flight, like the bench,
and on every reply the test reads the outbox file through its own SQLite connection: the
row of that very packet (found by its client's pseudonym) must already be there. The
agent's uplink points at a closed port, so nothing leaves the outbox during the test.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path

from pyrad.packet import AccountingRequest, AcctPacket

from edge.wifi.agent import WifiAgent
from edge.wifi.config import load_config
from edge.wifi.radius import RadiusAccountingAdapter
from edge.wifi.radius_parse import load_dictionary
from tests.support.edge_wifi_support import RADIUS_SECRET, free_port, write_agent_config

N = 600
WINDOW = 64


def _mac(i: int) -> str:
    return f"00-1A-2B-00-{i >> 8 & 255:02X}-{i & 255:02X}"


def _packets() -> list[bytes]:
    d = load_dictionary()
    out = []
    for i in range(N):
        pkt = AcctPacket(code=AccountingRequest, id=i % 256, secret=RADIUS_SECRET.encode(), dict=d)
        pkt["Acct-Status-Type"] = "Start"
        pkt["Acct-Session-Id"] = f"commit-{i}"
        pkt["Calling-Station-Id"] = _mac(i)
        pkt["NAS-Identifier"] = "btm-ap01"
        out.append(bytes(pkt.RequestPacket()))
    return out


def _send_and_check(port: int, packets: list[bytes], outbox: Path, ids: list[str]) -> list[int]:
    """Window-paced client; returns the packets whose reply came before their row."""
    db = sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)
    early = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        outstanding: dict[int, int] = {}  # RADIUS identifier -> packet index
        sent = answered = 0
        while answered < len(packets):
            while sent < len(packets) and len(outstanding) < WINDOW:
                s.send(packets[sent])
                outstanding[sent % 256] = sent
                sent += 1
            reply = s.recv(4096)
            i = outstanding.pop(reply[1])
            answered += 1
            row = db.execute(
                "SELECT count(*) FROM outbox WHERE instr(payload, ?) > 0", (ids[i].encode(),)
            ).fetchone()
            if row[0] != 1:
                early.append(i)
    db.close()
    return early


async def test_every_replied_packet_is_already_in_the_outbox(tmp_path: Path) -> None:
    block = "radius:\n  host: 127.0.0.1\n  port: 0\n"
    agent = WifiAgent(load_config(write_agent_config(tmp_path, free_port(), radius=block)))
    assert agent.link is not None
    await agent.start()
    try:
        radius = agent.adapters[0]
        assert isinstance(radius, RadiusAccountingAdapter)
        pseudonyms = [agent.emitter.pseudonymiser.client_id(_mac(i)) for i in range(N)]
        early = await asyncio.to_thread(
            _send_and_check, radius.port, _packets(), agent.link.outbox.path, pseudonyms
        )
        assert early == [], f"{len(early)} replies preceded their outbox commit"
        assert agent.link.outbox.depth() == N
        assert radius.stats.packets == N and radius.stats.events == N
    finally:
        await agent.stop()
