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
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(cond: object, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``cond()`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class PrivateMosquitto:
    """A real mosquitto on 127.0.0.1:<free port>, restartable on the same port."""

    def __init__(self, workdir: Path, extra_conf: str = "allow_anonymous true\n") -> None:
        if shutil.which("mosquitto") is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.port = free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        # As root mosquitto drops to user "mosquitto", which cannot read pytest's 0700 tmp dirs.
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\npersistence false\n{user}"
            f"log_dest file {workdir / 'mosquitto.log'}\n{extra_conf}"
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
