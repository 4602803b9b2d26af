"""Privacy scan: feed the agent raw MACs through every source, then search everything it
published (MQTT), logged (debug level), stored (state dir: outbox, WAL, key) and exported
(/metrics, /healthz) for those MACs in any spelling. One hit fails the test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from core.privacy import normalise_mac
from schemas.batch import decode_events
from tests.support.edge_wifi_support import (
    Collector,
    PrivateMosquitto,
    radclient,
    write_agent_config,
)
from tests.support.net import free_port, wait_until

MACS = [f"DA:A1:19:{i:02X}:5E:{0xA0 + i:02X}" for i in range(6)] + [
    "00:1A:2B:3C:4D:5E",
    "F0:18:98:AB:CD:EF",
]


def spellings(mac: str) -> list[bytes]:
    raw = normalise_mac(mac)
    hx = raw.hex()
    forms = {
        hx,
        ":".join(hx[i : i + 2] for i in range(0, 12, 2)),
        "-".join(hx[i : i + 2] for i in range(0, 12, 2)),
        ".".join(hx[i : i + 4] for i in range(0, 12, 4)),
    }
    out = [raw]
    for f in forms:
        out += [f.encode(), f.upper().encode()]
    return out


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return bytes(resp.read())


def _post(url: str, body: dict[str, object]) -> bytes:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return bytes(resp.read())


@pytest.mark.integration
def test_no_raw_mac_leaves_the_agent(tmp_path: Path) -> None:
    broker = PrivateMosquitto(tmp_path).start()
    collector = Collector(broker.port)
    ports = {"radius": free_port(socket.SOCK_DGRAM), "syslog": free_port(socket.SOCK_DGRAM)}
    meraki_port, metrics_port = free_port(), free_port()
    cfg = write_agent_config(
        tmp_path,
        broker.port,
        radius=f"radius:\n  host: 127.0.0.1\n  port: {ports['radius']}\n",
        syslog=f"syslog:\n  enabled: true\n  host: 127.0.0.1\n  port: {ports['syslog']}\n",
        meraki=(
            f"meraki:\n  enabled: true\n  host: 127.0.0.1\n  port: {meraki_port}\n"
            "  validator: v4l1d\n  secret: secret:meraki-btm\n"
        ),
    )
    cfg.write_text(cfg.read_text().replace("metrics_port: 0", f"metrics_port: {metrics_port}"))
    log = tmp_path / "agent.log"
    with log.open("wb") as fh:
        agent = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "-v", "edge", "wifi", "--config", str(cfg)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=os.environ,
        )
    try:
        wait_until(lambda: "connected to" in log.read_text(), 60, "agent connected")
        wait_until(lambda: "Meraki" in log.read_text(), 30, "meraki receiver up")
        base = f"http://127.0.0.1:{meraki_port}/meraki/scanning"
        # RADIUS: one session per MAC, Cisco-style session ids that embed the MAC too.
        packets = [
            f'Acct-Status-Type = Start, Acct-Session-Id = "5f2ab3c4/{m.lower()}/77", '
            f'Calling-Station-Id = "{m.replace(":", "-")}", User-Name = "{m.replace(":", "")}", '
            f'Called-Station-Id = "02-00-5E-10-00-01:HCMC Free WiFi"'
            for m in MACS
        ]
        out = radclient(ports["radius"], packets)
        assert out.count("Received Accounting-Response") == len(MACS), out
        # hostapd over syslog.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for m in MACS:
                line = f"<30>Jun  1 12:00:00 btm-ap02 hostapd: wlan0: AP-STA-CONNECTED {m.lower()}"
                s.sendto(line.encode(), ("127.0.0.1", ports["syslog"]))
        # Meraki: validator, refused secret, then observations.
        assert _get(base) == b"v4l1d"
        obs = [
            {"clientMac": m.lower(), "ssid": "HCMC Free WiFi",
             "latestRecord": {"time": "2025-06-01T05:00:00Z", "nearestApMac": "02:00:5e:10:00:02",
                              "nearestApRssi": -61}}
            for m in MACS
        ]  # fmt: skip
        body = {"version": "3.0", "type": "WiFi", "data": {"networkId": "N_1", "observations": obs}}
        with pytest.raises(urllib.error.HTTPError) as refused:
            _post(base, {**body, "secret": "wrong"})
        assert refused.value.code == 403
        refused.value.close()
        assert json.loads(_post(base, {**body, "secret": "meraki-shared"}))["accepted"] == len(MACS)

        want = 3 * len(MACS)
        wait_until(
            lambda: (
                sum(  # the link batches a busy device's events: count events
                    len(decode_events(p))
                    for p in collector.payloads("/session") + collector.payloads("/presence")
                )
                >= want
            ),
            60,
            f"{want} events on MQTT",
        )
        wait_until(lambda: collector.payloads("/heartbeat"), 30, "a heartbeat")
        exported = _get(f"http://127.0.0.1:{metrics_port}/metrics") + _get(
            f"http://127.0.0.1:{metrics_port}/healthz"
        )
    finally:
        agent.terminate()
        agent.wait(30)
        collector.close()
        broker.stop()

    published = b"\n".join(p for _, p, _ in collector.messages)
    stored = b"".join(f.read_bytes() for f in (tmp_path / "state").rglob("*") if f.is_file())
    haystacks = {"mqtt": published, "log": log.read_bytes(), "state": stored, "http": exported}
    assert b"wifi.presence" in published and b"edge.wifi.hostapd" in published
    hits = [
        (where, mac)
        for mac in MACS
        for where, data in haystacks.items()
        if any(form in data for form in spellings(mac))
    ]
    assert hits == []
