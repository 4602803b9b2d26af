"""Wi-Fi edge agent: RADIUS accounting packets/s, agent RSS, outbox replay rate.

The agent runs as a real ``tourpulse edge wifi`` subprocess (so its RSS is its own) against
a private Mosquitto this benchmark starts and stops. A pyrad load generator in this process
keeps a window of Accounting-Requests in flight and counts Accounting-Responses: a response
means the event is durably in the outbox. Then the broker is stopped, a backlog is sent,
the broker restarted, and the replay rate = backlog / (outbox empty - link reconnected).
Targets: >= 5,000 packets/s and <= 80 MB RSS on a small site box (issue 11). Issue 11
adds ``udp_drops`` (kernel drops on the RADIUS socket during the live run, goal 0) and
``rss_mb_at_rate`` (resident memory right after the live run, goal <= 80). A subscriber is
connected throughout: the link now treats "no matching subscribers" as not delivered.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from pyrad.packet import AccountingRequest, AcctPacket

from infra.bench.context import BenchContext, BenchError

SECRET = "bench-secret"
WINDOW = 64  # requests in flight, like a busy controller


#: ``TP_BENCH_PORTS=33000-33999`` keeps the private broker and the agent in a port range
#: (engineers sharing a machine each have one); default: any free port.
PORT_RANGE_ENV = "TP_BENCH_PORTS"
#: Ports handed out in this run (found free, bound later by a subprocess).
_TAKEN: set[int] = set()


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    low, _, high = os.environ.get(PORT_RANGE_ENV, "0-0").partition("-")
    for port in range(int(low), int(high or low) + 1):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            if port == 0 or port not in _TAKEN:
                _TAKEN.add(int(s.getsockname()[1]))
                return int(s.getsockname()[1])
    raise BenchError(f"no free port in {PORT_RANGE_ENV}={low}-{high}")


def _write_configs(root: Path, mqtt_port: int, radius_port: int, metrics_port: int) -> Path:
    (root / "dc").mkdir()
    (root / "dc" / "sites.yaml").write_text(
        "sites:\n- id: ben-thanh-market\n  name_vi: Chợ Bến Thành\n  name_en: Ben Thanh Market\n"
        "  kind: urban\n  lat: 10.7725\n  lon: 106.698\n  capacity_persons: 3000\n"
        "  radius_nas:\n  - ip: 127.0.0.1\n    secret: secret:radius\n"
    )
    (root / "dc" / "access_points.yaml").write_text(
        "access_points:\n- id: ben-thanh-market-ap01\n  site: ben-thanh-market\n  name: AP 1\n"
        "  nas_identifier: btm-ap01\n"
    )
    secrets = root / "secrets.yaml"
    secrets.write_text(f"radius: {SECRET}\n")
    secrets.chmod(0o600)
    cfg = root / "edge-wifi.yaml"
    cfg.write_text(
        f"device: btm-wifi\nsite: ben-thanh-market\nstate_dir: {root / 'state'}\n"
        f"device_configs: {root / 'dc'}\nsecrets_file: {secrets}\nmetrics_port: {metrics_port}\n"
        f"mqtt:\n  port: {mqtt_port}\n  max_inflight: 20\n"
        f"radius:\n  host: 127.0.0.1\n  port: {radius_port}\n"
    )
    return cfg


class _Broker:
    def __init__(self, root: Path) -> None:
        if shutil.which("mosquitto") is None:
            raise BenchError("mosquitto is not installed")
        self.port = _free_port()
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf = root / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{user}")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class _Subscriber:
    """Subscribes to everything (again after each reconnect) so publishes are delivered."""

    def __init__(self, port: int) -> None:
        from core.mqtt_client import MqttClientSettings, make_mqtt_client

        self.client = make_mqtt_client(MqttClientSettings(port=port))
        self.client.on_connect = lambda c, *_a: c.subscribe("#", qos=1)
        self.client.reconnect_delay_set(1, 1)
        self.client.connect_async("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise BenchError("no VmRSS in /proc status")


def _packets(n: int, offset: int) -> list[bytes]:
    from edge.wifi.radius_parse import load_dictionary

    d = load_dictionary()
    out = []
    for i in range(offset, offset + n):
        pkt = AcctPacket(code=AccountingRequest, id=i % 256, secret=SECRET.encode(), dict=d)
        pkt["Acct-Status-Type"] = "Start"
        pkt["Acct-Session-Id"] = f"bench-{i}"
        pkt["Calling-Station-Id"] = f"00-1A-{i >> 24 & 255:02X}-{i >> 16 & 255:02X}-" + (
            f"{i >> 8 & 255:02X}-{i & 255:02X}"
        )
        pkt["NAS-Identifier"] = "btm-ap01"
        out.append(bytes(pkt.RequestPacket()))
    return out


def _blast(port: int, packets: list[bytes], timeout: float = 120.0) -> float:
    """Send with ``WINDOW`` outstanding; return seconds until every packet was answered."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5.0)
        s.connect(("127.0.0.1", port))
        start = time.monotonic()
        sent = answered = 0
        while answered < len(packets):
            while sent < len(packets) and sent - answered < WINDOW:
                s.send(packets[sent])
                sent += 1
            try:
                s.recv(4096)
            except TimeoutError:
                raise BenchError(f"agent stopped answering after {answered} packets") from None
            answered += 1
            if time.monotonic() - start > timeout:
                raise BenchError("RADIUS load did not finish in time")
        return time.monotonic() - start


def _health(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return dict(json.loads(resp.read())["details"])
    except OSError:
        return {}


def _wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise BenchError(f"timed out waiting for {what}")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):  # peak resident set size
            return round(int(line.split()[1]) / 1024, 1)
    raise BenchError("no VmHWM in /proc status")


def run(ctx: BenchContext) -> dict[str, Any]:
    n = ctx.events or (2_000 if ctx.quick else 20_000)
    with tempfile.TemporaryDirectory(prefix="tp-bench-wifi-") as tmp:
        root = Path(tmp)
        broker = _Broker(root)
        radius_port, metrics_port = _free_port(socket.SOCK_DGRAM), _free_port()
        cfg = _write_configs(root, broker.port, radius_port, metrics_port)
        broker.start()
        subscriber = _Subscriber(broker.port)
        log = (root / "agent.log").open("wb")
        agent = subprocess.Popen(
            [sys.executable, "-m", "edge.wifi", "--config", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait(lambda: _health(metrics_port).get("mqtt") == "connected", 60, "agent online")
            live, backlog = _packets(n, 0), _packets(n, n)
            elapsed = _blast(radius_port, live)
            udp_drops = int(_health(metrics_port)["radius"].get("udp_drops") or 0)
            rss_at_rate = _vm_rss_mb(agent.pid)
            _wait(lambda: _health(metrics_port).get("queue_depth") == 0, 300, "live drain")

            broker.stop()
            _wait(lambda: _health(metrics_port).get("mqtt") == "disconnected", 60, "link down")
            _blast(radius_port, backlog)
            broker.start()
            _wait(lambda: _health(metrics_port).get("mqtt") == "connected", 60, "reconnect")
            t0 = time.monotonic()
            _wait(lambda: _health(metrics_port).get("queue_depth") == 0, 600, "replay")
            replay_s = time.monotonic() - t0
            rss = _rss_mb(agent.pid)
        finally:
            agent.terminate()
            agent.wait(30)
            log.close()
            subscriber.close()
            broker.stop()
    return {
        "radius_packets_per_s": round(n / elapsed, 1),
        "rss_mb": rss,
        "rss_mb_at_rate": rss_at_rate,
        "udp_drops": udp_drops,
        "replay_events_per_s": round(n / max(replay_s, 1e-3), 1),
        "packets": n,
        "window": WINDOW,
    }
