"""Baseline: how fast the broker alone moves messages from a paho publisher to a subscriber.

The end-to-end figure is only meaningful next to what Mosquitto itself does on the same
machine at the same moment. Publisher and subscriber run in separate processes (in one
Python process they would share a GIL and measure that instead), QoS 1 both ways, with
payloads of the size the pipeline carries, on a topic outside ``tp/v1`` so no gateway
sees them. The rate is messages delivered / (last delivery - first publish).

A QoS 1 PUBACK only means the broker has the message, and Mosquitto (default
``max_queued_messages 1000``) drops QoS 1 messages queued for a subscriber that falls
further behind. So the publisher also keeps its lead over what the subscriber received
under :data:`MAX_LEAD`: the figure is the rate the broker sustains without loss.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid
from multiprocessing.connection import Connection
from typing import Any

import paho.mqtt.client as mqtt

from core.mqtt_client import MqttClientSettings, make_mqtt_client
from infra.bench.context import BenchError

_WINDOW = 2000  # unacknowledged publishes, like the simulator's default
MAX_LEAD = 800  # published but not yet received; below Mosquitto's default queue of 1000


def _client(name: str) -> mqtt.Client:
    """Credentials and TLS from TP_MQTT_* like every other client (the broker may be secured)."""
    return make_mqtt_client(
        MqttClientSettings.from_env(), f"tp-bench-{name}-{uuid.uuid4().hex[:6]}"
    )


def _subscribe(host: str, port: int, topic: str, n: int, pipe: Connection, got: Any) -> None:
    """Child: report readiness, then (first, last) receive wall times once ``n`` arrived."""
    client = _client("sub")
    times: list[float] = []

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        times.append(time.time())
        got.value = len(times)
        if len(times) == n:
            client.disconnect()

    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_: pipe.send("ready")
    client.on_message = on_message
    client.connect(host, port)
    client.loop_forever()
    pipe.send((times[0], times[-1], len(times)))


def _publish(host: str, port: int, topic: str, n: int, size: int, got: Any) -> float:
    """Publish ``n`` QoS 1 messages as fast as allowed; return the first publish time."""
    client = _client("pub")
    acked = 0

    def on_publish(*_: Any) -> None:
        nonlocal acked
        acked += 1

    client.on_publish = on_publish
    client.max_inflight_messages_set(_WINDOW)
    client.connect(host, port)
    payload = b"x" * size
    first = time.time()
    for i in range(n):
        while i - acked >= _WINDOW or i - got.value >= MAX_LEAD:
            client.loop(timeout=0.002)
        client.publish(topic, payload, qos=1)
        if i % 32 == 0:
            client.loop(timeout=0)
    deadline = time.monotonic() + 60
    while acked < n and time.monotonic() < deadline:
        client.loop(timeout=0.05)
    client.disconnect()
    return first


def measure(host: str, port: int, messages: int, size: int, timeout: float = 120.0) -> float:
    """Messages per second from first publish to last delivery."""
    topic = f"bench/{uuid.uuid4().hex[:8]}/baseline"
    spawn = mp.get_context("spawn")
    parent, child = spawn.Pipe()
    got = spawn.Value("q", 0, lock=False)
    sub = spawn.Process(
        target=_subscribe, args=(host, port, topic, messages, child, got), daemon=True
    )
    sub.start()
    try:
        if not parent.poll(30) or parent.recv() != "ready":
            raise BenchError(f"baseline subscriber could not subscribe on {host}:{port}")
        first_publish = _publish(host, port, topic, messages, size, got)
        if not parent.poll(timeout):
            raise BenchError(f"baseline: not all {messages} messages arrived in {timeout:.0f} s")
        _first, last, received = parent.recv()
    finally:
        sub.join(timeout=10)
        if sub.is_alive():
            sub.terminate()
            sub.join(timeout=10)
    return float(received / max(last - first_publish, 1e-6))
