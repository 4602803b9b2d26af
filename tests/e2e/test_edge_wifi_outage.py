"""Nothing lost: 5,000 radclient packets, broker down >= 60 s in the middle, all reach Kafka.

Real components end to end: FreeRADIUS radclient → the agent (``tourpulse edge wifi`` in a
subprocess) → private Mosquitto (stopped and restarted by the test) → the ingest gateway
(``tourpulse gateway``) → the shared Kafka. The private broker persists sessions so the
gateway's queued subscription survives the restart, as a production broker would.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import defaultdict
from pathlib import Path

import pytest

from core.settings import Settings
from schemas.topics import KafkaTopic
from tests.support.edge_wifi_support import (
    PrivateMosquitto,
    healthy,
    radclient,
    spawn_cli,
    stop_process,
    write_agent_config,
)
from tests.support.kafka_helpers import consume_events, create_topics
from tests.support.net import free_port, wait_until

SESSIONS = 1000
PER_SESSION = ("Start", "Interim-Update", "Interim-Update", "Interim-Update", "Stop")
OUTAGE_S = 60


def _packets() -> list[str]:
    """Session-major: each session's Start, 3 Interims, Stop; 5 x 1000 = 5,000 packets."""
    out = []
    for s in range(SESSIONS):
        mac = f"00-1A-2B-{s >> 16 & 255:02X}-{s >> 8 & 255:02X}-{s & 255:02X}"
        for i, status in enumerate(PER_SESSION):
            out.append(
                f'Acct-Status-Type = {status}, Acct-Session-Id = "out-{s:05d}", '
                f'Calling-Station-Id = "{mac}", NAS-Identifier = "btm-ap0{1 + s % 2}", '
                f"Acct-Session-Time = {i * 60}, Acct-Input-Octets = {i * 1000}"
            )
    return out


def _send(port: int, packets: list[str]) -> None:
    """radclient, 32 in flight; every packet must be answered (Lost: 0)."""
    out = radclient(port, packets, "s3cret-btm", "-p", "32", "-q", "-s")
    assert f"Accepted      : {len(packets)}" in out and "Lost          : 0" in out, out


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_outage_loses_nothing(tmp_path: Path, settings: Settings, namespace: str) -> None:
    broker = PrivateMosquitto(tmp_path, persistent=True).start()
    radius_port = free_port()
    cfg = write_agent_config(
        tmp_path,
        broker.port,
        radius=f"radius:\n  host: 127.0.0.1\n  port: {radius_port}\n",
    )
    topic = settings.kafka_topic(KafkaTopic.WIFI_SESSION)
    asyncio.run(create_topics(settings.kafka_bootstrap, [topic], partitions=4))
    env = {
        **os.environ,
        "TP_MQTT_PORT": str(broker.port),
        "TP_MQTT_HOST": "127.0.0.1",
        "TP_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "TP_TOPIC_NAMESPACE": namespace,
    }
    gw_port = free_port()
    gateway = spawn_cli(
        [
            "gateway",
            "--metrics-port",
            str(gw_port),
            "--client-id",
            f"gw-{namespace}",
            "--share-group",
            f"g{namespace}",
        ],
        env,
        tmp_path / "gateway.log",
    )
    agent = spawn_cli(["edge", "wifi", "--config", str(cfg)], env, tmp_path / "agent.log")
    packets = _packets()
    try:
        wait_until(lambda: "connected to" in (tmp_path / "agent.log").read_text(), 60, "agent up")
        wait_until(lambda: healthy(gw_port), 60, "gateway healthy (subscribed)")
        _send(radius_port, packets[:2000])

        broker.stop()
        down_at = time.monotonic()
        _send(radius_port, packets[2000:3500])  # answered: the outbox holds them
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))  # the outage itself
        broker.start()

        _send(radius_port, packets[3500:])

        n = 5000
        while True:  # read until 5,000 distinct ids (re-sends after lost PUBACKs are allowed)
            records = asyncio.run(consume_events(settings.kafka_bootstrap, topic, n, timeout=300))
            unique = len({json.loads(r)["id"] for r in records})
            if unique >= 5000:
                break
            n = len(records) + 5000 - unique
    finally:
        stop_process(agent)
        stop_process(gateway)
        broker.stop()

    by_id: dict[str, dict[str, object]] = {}
    for rec in records:
        ev = json.loads(rec)
        by_id.setdefault(ev["id"], ev)
    assert len(by_id) == 5000, f"{len(by_id)} unique events of 5000 ({len(records)} events read)"
    per_session: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for rec in records:  # Kafka order (one partition per site), duplicates removed
        ev = json.loads(rec)
        seq = per_session[ev["data"]["session_id"]]
        step = (ev["type"], ev["data"]["session_seconds"] or 0)
        if step not in seq:
            seq.append(step)
    assert len(per_session) == SESSIONS
    expected = [
        ("wifi.session.start", 0),
        ("wifi.session.interim", 60),
        ("wifi.session.interim", 120),
        ("wifi.session.interim", 180),
        ("wifi.session.stop", 240),
    ]
    assert all(steps == expected for steps in per_session.values())
