"""Test helpers for the Wi-Fi edge: a private Mosquitto broker and an MQTT collector.

The outage and ACL tests stop brokers and install ACLs, so they never touch the shared
broker on 1883: each starts its own ``mosquitto`` (the real Debian binary) on a free port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import urllib.request
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.support.net import free_port, wait_until


class PrivateMosquitto:
    """A real mosquitto on 127.0.0.1:<free port>, restartable on the same port."""

    def __init__(
        self, workdir: Path, extra_conf: str = "allow_anonymous true\n", persistent: bool = False
    ) -> None:
        if shutil.which("mosquitto") is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.port = free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        # As root mosquitto drops to user "mosquitto", which cannot read pytest's 0700 tmp dirs.
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n{user}"
            + (f"persistence true\npersistence_location {workdir}/\n" if persistent else "")
            + f"log_dest file {workdir / 'mosquitto.log'}\n{extra_conf}"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateMosquitto:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._accepting_or_dead, 20, f"mosquitto on port {self.port}")
        if self.proc.poll() is not None:
            log = self.workdir / "mosquitto.log"
            tail = log.read_text()[-2000:] if log.exists() else "(no log)"
            raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {tail}")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def _accepting_or_dead(self) -> bool:
        return self.proc is None or self.proc.poll() is not None or self._accepting()

    def _accepting(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
            return True
        return False


class Collector:
    """Subscribes (MQTT 5) and keeps every (topic, payload, retain) it receives, in order."""

    def __init__(
        self, port: int, topic: str = "#", username: str | None = None, password: str | None = None
    ) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"collector-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda c, _u, _f, rc, _p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(20):
            raise AssertionError("collector did not subscribe")

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def payloads(self, suffix: str = "") -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t.endswith(suffix)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def puback_reason(
    port: int, topic: str, payload: bytes, username: str, password: str
) -> ReasonCode:
    """Publish once at QoS 1 over MQTT 5 and return the PUBACK reason code.

    MQTT 3.1.1 brokers drop unauthorised publishes silently; v5 says why in the PUBACK.
    """
    result: list[ReasonCode] = []
    done = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"acl-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    client.username_pw_set(username, password)

    def on_publish(_c: mqtt.Client, _u: object, _mid: int, rc: ReasonCode, _p: object) -> None:
        result.append(rc)
        done.set()

    connected = threading.Event()
    refused: list[ReasonCode] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        if rc.is_failure:
            refused.append(rc)
        connected.set()

    client.on_publish = on_publish
    client.on_connect = on_connect
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    try:
        if not connected.wait(20):
            raise AssertionError("no CONNACK")
        if refused:
            return refused[0]
        client.publish(topic, payload, qos=1)
        if not done.wait(20):
            raise AssertionError("no PUBACK")
        return result[0]
    finally:
        client.disconnect()
        client.loop_stop()


SITE = "ben-thanh-market"
AGENT = "btm-wifi"
RADIUS_SECRET = "s3cret-btm"
#: APs of the test deployment: id -> (BSSID, NAS-Identifier).
TEST_APS = {
    "ben-thanh-market-ap01": ("02:00:5e:10:00:01", "btm-ap01"),
    "ben-thanh-market-ap02": ("02:00:5e:10:00:02", "btm-ap02"),
}


def write_device_configs(root: Path, nas_ip: str = "127.0.0.1") -> tuple[Path, Path]:
    """A one-site deployment whose RADIUS controller is on loopback; returns (dir, secrets)."""
    cfg = root / "device_configs"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "sites.yaml").write_text(
        "sites:\n"
        f"- id: {SITE}\n  name_vi: Chợ Bến Thành\n  name_en: Ben Thanh Market\n  kind: urban\n"
        "  lat: 10.7725\n  lon: 106.698\n  capacity_persons: 3000\n"
        f"  wifi_agent: {AGENT}\n"
        f"  radius_nas:\n  - ip: {nas_ip}\n    secret: secret:radius-btm\n"
        "- id: notre-dame-cathedral\n  name_vi: Nhà thờ Đức Bà\n  name_en: Notre-Dame\n"
        "  kind: urban\n  lat: 10.7798\n  lon: 106.699\n  capacity_persons: 1500\n"
    )
    aps = "access_points:\n"
    for ap, (bssid, nas_id) in TEST_APS.items():
        aps += (
            f"- id: {ap}\n  site: {SITE}\n  name: {ap}\n  bssids: ['{bssid}']\n"
            f"  nas_identifier: {nas_id}\n"
        )
    aps += "- id: notre-dame-cathedral-ap01\n  site: notre-dame-cathedral\n  name: NDC AP 1\n"
    (cfg / "access_points.yaml").write_text(aps)
    secrets = root / "secrets.yaml"
    secrets.write_text(f"radius-btm: {RADIUS_SECRET}\nmeraki-btm: meraki-shared\n")
    secrets.chmod(0o600)
    return cfg, secrets


def write_agent_config(root: Path, mqtt_port: int, **sections: str) -> Path:
    """Agent YAML for the test deployment; ``sections`` are extra YAML blocks by key."""
    cfg_dir, secrets = write_device_configs(root)
    text = (
        f"device: {AGENT}\nsite: {SITE}\ndeployment: hcmc\nstate_dir: {root / 'state'}\n"
        f"device_configs: {cfg_dir}\nsecrets_file: {secrets}\nmetrics_port: 0\n"
        f"mqtt:\n  port: {mqtt_port}\n  heartbeat_s: 1\n"
    )
    for block in sections.values():
        text += block
    path = root / "edge-wifi.yaml"
    path.write_text(text)
    return path


class ListSink:
    """In-memory event sink for adapter tests (the MQTT path is tested with the real link)."""

    def __init__(self) -> None:
        self.events: list[object] = []

    def submit(self, event: object) -> int:
        self.events.append(event)
        return len(self.events)


def radclient(port: int, packets: list[str], secret: str = RADIUS_SECRET, *extra: str) -> str:
    """Send accounting packets with FreeRADIUS's radclient; returns its output."""
    if shutil.which("radclient") is None:
        raise RuntimeError("radclient is not installed (apt-get install freeradius-utils)")
    proc = subprocess.run(
        ["radclient", "-r", "3", "-t", "5", *extra, f"127.0.0.1:{port}", "acct", secret],
        input="\n\n".join(packets) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return proc.stdout + proc.stderr


def spawn_cli(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``tourpulse -v <args>`` in a subprocess, output to ``log`` (agent, gateway...)."""
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "-v", *args],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited after 20 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def healthy(port: int) -> bool:
    """True when ``/healthz`` on 127.0.0.1:port answers 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


#: OpenWrt stand-ins. ``logger`` does what logd does with ``system.log_ip``: it forwards the
#: line as UDP syslog (to TP_TEST_SYSLOG_PORT), so tests cover script → syslog → agent.
LOGGER_STUB = f"""#!{sys.executable}
import os, socket, sys
args = sys.argv[1:]
tag = "logger"
if args[:1] == ["-t"]:
    tag, args = args[1], args[2:]
line = "<30>Jun  1 12:00:00 openwrt " + tag + ": " + " ".join(args)
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.sendto(line.encode(), ("127.0.0.1", int(os.environ["TP_TEST_SYSLOG_PORT"])))
"""

UCI_STUB = """#!/bin/sh
echo "$*" >> "$UCI_LOG"
case "$*" in
  "-q get tourpulse.agent.ap_id") echo "ben-thanh-market-ap02" ;;
  "-q get"*) exit 1 ;;
esac
exit 0
"""

HOSTAPD_CLI_STUB = """#!/bin/sh
for last in "$@"; do :; done
[ "$last" = get_config ] && printf 'bssid=02:00:5e:10:00:02\\nssid=HCMC Free WiFi\\nwpa=0\\n'
exit 0
"""


def openwrt_env(tmp_path: Path, syslog_port: int, hostapd_cli: bool = True) -> dict[str, str]:
    """Environment whose PATH has the OpenWrt stubs (``uci`` logs to $UCI_LOG).

    ``hostapd_cli=False`` leaves the stub out, for tests that drive the real one.
    """
    bindir = tmp_path / "openwrt-bin"
    bindir.mkdir(exist_ok=True)
    stubs = {"logger": LOGGER_STUB, "uci": UCI_STUB}
    if hostapd_cli:
        stubs["hostapd_cli"] = HOSTAPD_CLI_STUB
    for name, text in stubs.items():
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "UCI_LOG": str(tmp_path / "uci.log"),
        "TP_TEST_SYSLOG_PORT": str(syslog_port),
    }
