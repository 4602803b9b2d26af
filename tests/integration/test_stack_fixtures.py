"""The shared fixtures really reach the services and isolate each test."""

from __future__ import annotations

import re
import uuid
from typing import Any

import psycopg
import pytest

from core.settings import Settings

pytestmark = pytest.mark.integration


def test_namespace_is_short_and_unique(namespace: str) -> None:
    assert re.fullmatch(r"t[0-9a-f]{8}", namespace)


def test_database_is_fresh_and_migrated(database_url: str, namespace: str) -> None:
    with psycopg.connect(database_url) as conn:
        name = conn.execute("SELECT current_database()").fetchone()
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        }
    assert name == (f"tp_{namespace}",)
    assert {"wifi_sessions", "occupancy_minute"} <= tables


def test_settings_point_at_the_stack(settings: Settings, database_url: str, namespace: str) -> None:
    assert settings.database_url == database_url
    assert settings.kafka_topic("wifi.sessions") == f"{namespace}.wifi.sessions"


async def test_kafka_roundtrip(kafka_admin: Any, namespace: str) -> None:
    from aiokafka import AIOKafkaProducer

    topic = f"{namespace}.roundtrip"
    await kafka_admin.create_topics([topic], partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_admin.bootstrap)
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(topic, f"m{i}".encode(), key=b"k")
    finally:
        await producer.stop()
    records = await kafka_admin.consume_all(topic, 5)
    assert [r.value for r in records] == [f"m{i}".encode() for i in range(5)]


async def test_mqtt_publish_is_acknowledged_and_delivered(
    stack, mqtt_publish, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    topic = f"tp-test/{namespace}/{uuid.uuid4().hex[:6]}"
    got: list[bytes] = []
    subscribed = threading.Event()
    done = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    sub.on_subscribe = lambda *_: subscribed.set()

    def on_message(_c, _u, msg) -> None:  # type: ignore[no-untyped-def]
        got.append(msg.payload)
        if len(got) == 3:
            done.set()

    sub.on_message = on_message
    sub.connect(stack.mqtt_host, stack.mqtt_port)
    sub.loop_start()
    try:
        assert await asyncio.to_thread(subscribed.wait, 30)
        await mqtt_publish(topic, [b"a", b"b", b"c"])
        assert await asyncio.to_thread(done.wait, 30)
    finally:
        sub.disconnect()
        sub.loop_stop()
    assert got == [b"a", b"b", b"c"]
