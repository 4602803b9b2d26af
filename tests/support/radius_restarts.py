"""RADIUS packets to a Wi-Fi agent that restarts between them, over one outbox.

Shared by the event-time tests and the RADIUS adapter's integration tests: both check what
a NAS retransmission across an agent restart leaves queued for the uplink.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

from pyrad.packet import AccountingResponse

from edge.link import LinkIdentity, MqttLink, MqttLinkConfig
from edge.wifi.agent import WifiAgent
from edge.wifi.config import load_config
from edge.wifi.radius import RadiusAccountingAdapter
from schemas.topics import DeviceKind
from tests.support.edge_wifi_support import write_agent_config

RADIUS_BLOCK = "radius:\n  host: 127.0.0.1\n  port: 0\n  max_clock_skew_s: 7200\n"


async def send_udp(port: int, data: bytes, src: str = "127.0.0.1") -> bytes | None:
    """One datagram from ``src`` to the agent on 127.0.0.1; its reply, None after 2 s of
    silence (another ``src`` looks like another NAS)."""

    def go() -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((src, 0))
            s.settimeout(2)
            s.sendto(data, ("127.0.0.1", port))
            try:
                return s.recv(4096)
            except TimeoutError:
                return None

    return await asyncio.to_thread(go)


async def queued_after_restarts(
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
            reply = await send_udp(radius.port, raw)
            assert reply is not None and reply[0] == AccountingResponse
        finally:
            await agent.stop()
        history.append([json.loads(q.payload) for q in link.outbox.peek()])
        link.outbox.close()
        await asyncio.sleep(1.1)  # a later arrival: another event time if it were re-built
    return history
