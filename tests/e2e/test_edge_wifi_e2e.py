"""Issue 3 "done when": all three real sources reach occupancy in PostgreSQL.

Real components only: FreeRADIUS ``radclient`` accounting packets, the OpenWrt action script
(run as ``hostapd_cli -a`` runs it; its ``logger`` line travels as UDP syslog, as OpenWrt's
logd forwards it) and a Meraki Scanning API v3 POST → ``tourpulse edge wifi`` → a private
Mosquitto → ``tourpulse gateway`` → Kafka → ``tourpulse worker`` → ``occupancy_minute``.
The private broker keeps other tests' traffic out of this namespace's topics and database.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.settings import Settings
from schemas.batch import decode_events
from schemas.topics import KafkaTopic
from tests.support.edge_wifi_support import (
    Collector,
    PrivateMosquitto,
    healthy,
    openwrt_env,
    radclient,
    spawn_cli,
    stop_process,
    write_agent_config,
)
from tests.support.net import free_port, wait_until
from tests.support.worker_support import query, start_worker, stop_worker, wait_for, worker_topics

SCRIPT = (
    Path(__file__).resolve().parents[2] / "firmware_scripts/openwrt/tourpulse-hostapd-action.sh"
)
SITE = "ben-thanh-market"
RADIUS_A, RADIUS_B = "00-1A-2B-00-00-0A", "00-1A-2B-00-00-0B"
HOSTAPD_C, MERAKI_D, PROBING_E = "da:a1:19:00:00:0c", "00:1a:2b:00:00:0d", "00:1a:2b:00:00:0e"


def _acct(status: str, session: str, mac: str, seconds: int = 0) -> str:
    return (
        f'Acct-Status-Type = {status}, Acct-Session-Id = "{session}", '
        f'Calling-Station-Id = "{mac}", NAS-Identifier = "btm-ap01", '
        f'Called-Station-Id = "02-00-5E-10-00-01:HCMC Free WiFi", Acct-Session-Time = {seconds}'
    )


def _radclient(port: int, packets: list[str]) -> None:
    out = radclient(port, packets)
    assert out.count("Received Accounting-Response") == len(packets), out


def _action(env: dict[str, str], event: str, mac: str) -> None:
    subprocess.run(["sh", str(SCRIPT), "wlan0", event, mac], env=env, check=True, timeout=60)


def _meraki(port: int) -> dict[str, int]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    obs = [
        {"clientMac": mac, "ssid": ssid,
         "latestRecord": {"time": now, "nearestApMac": "02:00:5e:10:00:01", "nearestApRssi": -58}}
        for mac, ssid in ((MERAKI_D, "HCMC Free WiFi"), (PROBING_E, None))
    ]  # fmt: skip
    body = {"version": "3.0", "secret": "meraki-shared", "type": "WiFi",
            "data": {"networkId": "N_btm", "observations": obs}}  # fmt: skip
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/meraki/scanning",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return dict(json.loads(resp.read()))


def _occupancy(url: str) -> tuple[int, int, int]:
    """(sessions started, sessions ended, connected in the newest materialised minute)."""
    rows = query(url, "SELECT minute, connected, new_sessions, ended_sessions "
                      f"FROM occupancy_minute WHERE site = '{SITE}' ORDER BY minute")  # fmt: skip
    if not rows:
        return (0, 0, 0)
    return (sum(int(r[2]) for r in rows), sum(int(r[3]) for r in rows), int(rows[-1][1]))  # type: ignore[call-overload]


def _session_kind(session_id: str) -> str:
    """Every id is made by the agent: radius-<keyed hash> (the NAS's id never leaves the
    edge), hostapd-…, meraki-…."""
    return session_id.split("-")[0]


@pytest.mark.integration
@pytest.mark.timeout(600)
async def test_radius_openwrt_and_meraki_reach_occupancy(
    tmp_path: Path, settings: Settings, namespace: str, kafka_admin: object
) -> None:
    topics = [*worker_topics(settings), settings.kafka_topic(KafkaTopic.WIFI_PRESENCE)]
    await kafka_admin.create_topics(topics, partitions=2)  # type: ignore[attr-defined]
    broker = PrivateMosquitto(tmp_path).start()
    collector = Collector(broker.port, "tp/v1/#")
    radius_port, syslog_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    meraki_port, gw_port = free_port(), free_port()
    cfg = write_agent_config(
        tmp_path,
        broker.port,
        radius=f"radius:\n  host: 127.0.0.1\n  port: {radius_port}\n",
        syslog=f"syslog:\n  enabled: true\n  host: 127.0.0.1\n  port: {syslog_port}\n",
        meraki=(
            f"meraki:\n  enabled: true\n  host: 127.0.0.1\n  port: {meraki_port}\n"
            "  validator: v4l1d\n  secret: secret:meraki-btm\n"
        ),
    )
    env = {
        **os.environ,
        "TP_MQTT_HOST": "127.0.0.1",
        "TP_MQTT_PORT": str(broker.port),
        "TP_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "TP_TOPIC_NAMESPACE": namespace,
    }
    gw_args = ["gateway", "--metrics-port", str(gw_port), "--client-id", f"gw-{namespace}",
               "--share-group", f"g{namespace}"]  # fmt: skip
    gateway = spawn_cli(gw_args, env, tmp_path / "gateway.log")
    agent_log = tmp_path / "agent.log"
    agent = spawn_cli(["edge", "wifi", "--config", str(cfg)], env, agent_log)
    worker_log = tmp_path / "worker.log"
    worker = start_worker(settings, worker_log)
    ap_env = openwrt_env(tmp_path, syslog_port)
    url = settings.database_url
    try:
        for marker in ("connected to", "Meraki scanning receiver", "syslog receiver"):
            await asyncio.to_thread(
                wait_until, lambda m=marker: m in agent_log.read_text(), 90, f"agent: {marker}"
            )
        await asyncio.to_thread(wait_until, lambda: healthy(gw_port), 90, "gateway subscribed")

        # Four clients arrive, one per source path (E only probes: footfall, not occupancy).
        await asyncio.to_thread(
            _radclient,
            radius_port,
            [_acct("Start", "e2e-a", RADIUS_A), _acct("Start", "e2e-b", RADIUS_B)],
        )
        await asyncio.to_thread(_action, ap_env, "AP-STA-CONNECTED", HOSTAPD_C)
        assert await asyncio.to_thread(_meraki, meraki_port) == {"accepted": 2, "received": 2}

        await wait_for(lambda: _occupancy(url)[0] == 4, 180, "4 new sessions", worker, worker_log)
        await wait_for(lambda: _occupancy(url)[2] == 4, 60, "4 connected", worker, worker_log)

        # B leaves through RADIUS, C through hostapd.
        await asyncio.to_thread(_radclient, radius_port, [_acct("Stop", "e2e-b", RADIUS_B, 30)])
        await asyncio.to_thread(_action, ap_env, "AP-STA-DISCONNECTED", HOSTAPD_C)
        await wait_for(lambda: _occupancy(url)[1] == 2, 180, "2 ended sessions", worker, worker_log)
        # The controller reboots (Accounting-On): A, still open on it, ends now, not at the
        # session timeout (measured before: Accounting-On was ignored).
        await asyncio.to_thread(
            _radclient, radius_port, ['Acct-Status-Type = Accounting-On, NAS-Identifier = "c"']
        )
        await wait_for(lambda: _occupancy(url)[1] == 3, 180, "3 ended sessions", worker, worker_log)
        # Snapshot before shutdown, which closes Meraki's open session on purpose.
        published = list(collector.messages)
        rows = query(url, f"SELECT session_id, ap, ended_at IS NOT NULL FROM wifi_sessions "
                          f"WHERE site = '{SITE}'")  # fmt: skip
    finally:
        stop_process(agent)
        stop_process(gateway)
        stop_worker(worker)
        collector.close()
        broker.stop()

    sessions = sorted((_session_kind(str(r[0])), r[1], r[2]) for r in rows)
    assert sessions == [
        ("hostapd", "ben-thanh-market-ap02", True),
        ("meraki", "ben-thanh-market-ap01", False),
        ("radius", "ben-thanh-market-ap01", True),  # A: closed by Accounting-On
        ("radius", "ben-thanh-market-ap01", True),  # B: its own Stop
    ], rows

    # Every MQTT payload is a contract event; each source produced what it should.
    by_source: dict[str, list[str]] = {}
    for topic, payload, _ in published:
        if topic.endswith(("/session", "/presence")):
            for ev in decode_events(payload):  # the link batches a busy device's events
                by_source.setdefault(ev.source, []).append(ev.type)
    assert sorted(by_source["edge.wifi.radius"]) == [
        "wifi.session.start", "wifi.session.start", "wifi.session.stop",
        "wifi.session.stop"]  # fmt: skip
    assert by_source["edge.wifi.hostapd"] == ["wifi.session.start", "wifi.session.stop"]
    assert sorted(by_source["edge.wifi.meraki"]) == [
        "wifi.presence", "wifi.presence", "wifi.session.start"]  # fmt: skip
