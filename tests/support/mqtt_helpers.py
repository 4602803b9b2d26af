"""MQTT helper for tests: publish payloads with paho (MQTT 5, QoS 1) and wait for PUBACKs.

Waiting for every PUBACK means the broker has taken responsibility for each message
before the test starts asserting on what downstream consumers saw.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from core.mqtt_client import MqttClientSettings, make_mqtt_client


def publish_payloads(
    host: str,
    port: int,
    topic: str,
    payloads: Sequence[bytes | str],
    qos: int = 1,
    timeout: float = 60.0,
    protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv5,
) -> None:
    """Publish ``payloads`` in order to ``topic``; block until all are acknowledged."""
    client = make_mqtt_client(
        MqttClientSettings.from_env(host=host, port=port),
        f"test-pub-{uuid.uuid4().hex[:8]}",
        protocol=protocol,
    )
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        if rc.is_failure:
            refused.append(str(rc))
        connected.set()

    client.on_connect = on_connect
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        if not connected.wait(timeout) or refused:
            raise ConnectionError(f"MQTT connect to {host}:{port} failed: {refused or 'timeout'}")
        infos = [client.publish(topic, p, qos=qos) for p in payloads]
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                raise TimeoutError(f"MQTT publish to {topic} not acknowledged in {timeout}s")
    finally:
        client.disconnect()
        client.loop_stop()


async def apublish_payloads(
    host: str,
    port: int,
    topic: str,
    payloads: Sequence[bytes | str],
    qos: int = 1,
    timeout: float = 60.0,  # noqa: ASYNC109 (PUBACK deadline)
) -> None:
    """:func:`publish_payloads` off the event loop, for async tests."""
    await asyncio.to_thread(publish_payloads, host, port, topic, payloads, qos, timeout)
