"""The ingest gateway against the real Mosquitto and Kafka on 127.0.0.1.

Each test has its own namespace: Kafka topics ``<ns>.tp.*``, MQTT site ``<ns>`` and share
group ``<ns>``, so tests never see each other's messages and can run in any order.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.settings import Settings
from schemas.codec import decode_event, encode_event
from schemas.stream_out import DeadLetterV1
from schemas.topics import KafkaTopic
from stream.gateway.config import GatewayConfig
from stream.gateway.gateway import Gateway
from tests.support.gateway_samples import session_start, spine_events, topic_for
from tests.support.net import until

pytestmark = pytest.mark.integration

DLQ = KafkaTopic.DEAD_LETTER


async def start_gateway(settings: Settings, client_id: str, **options: Any) -> Gateway:
    ns = settings.topic_namespace or "x"
    config = GatewayConfig(
        client_id=client_id, share_group=ns, site=ns, session_expiry_s=60, metrics_port=0, **options
    )
    gateway = Gateway(settings, config)
    await asyncio.to_thread(gateway.start)
    assert await asyncio.to_thread(gateway.wait_subscribed, 30), "gateway never subscribed"
    return gateway


@pytest.fixture
async def gateway(settings: Settings, namespace: str) -> AsyncIterator[Gateway]:
    gw = await start_gateway(settings, f"gw-{namespace}")
    try:
        yield gw
    finally:
        await asyncio.to_thread(gw.stop)


async def test_each_event_type_reaches_its_topic_keyed_by_site_with_ingest_time(
    gateway: Gateway,
    settings: Settings,
    namespace: str,
    kafka_admin: Any,
    mqtt_publish: Any,
) -> None:
    events = spine_events(namespace)
    for event in events:
        await mqtt_publish(topic_for(event), [encode_event(event)])
    by_topic: dict[str, list[Any]] = {}
    for event in events:
        by_topic.setdefault(event.kafka_topic, []).append(event)
    for topic, expected in by_topic.items():
        records = await kafka_admin.consume_all(settings.kafka_topic(topic), len(expected))
        got = {decode_event(r.value).id: (r, decode_event(r.value)) for r in records}
        assert set(got) == {e.id for e in expected}
        for event in expected:
            record, forwarded = got[event.id]
            assert record.key == namespace.encode()
            assert forwarded.type == event.type
            assert forwarded.ingest_time is not None
            assert forwarded.model_copy(update={"ingest_time": None}) == event
    await until(
        lambda: gateway.metrics.value("tp_gateway_forwarded_total") == len(events),
        what="forwarded counter",
    )
    assert gateway.metrics.value("tp_gateway_in_flight") == 0
    assert gateway.health().ok


async def test_bad_inputs_are_dead_lettered_and_the_gateway_keeps_working(
    gateway: Gateway,
    settings: Settings,
    namespace: str,
    kafka_admin: Any,
    mqtt_publish: Any,
) -> None:
    good = session_start(namespace, 1)
    topic = topic_for(good)
    doc = json.loads(encode_event(good))
    wrong_types = json.dumps({**doc, "event_time": 12, "data": {**doc["data"], "ap": 5}})
    unknown = json.dumps({**doc, "type": "wifi.session.teleport"})
    bad: list[tuple[str, bytes, str]] = [
        (topic, encode_event(good)[:50], "invalid_json"),
        (topic, wrong_types.encode(), "schema_violation"),
        (topic, unknown.encode(), "unknown_event_type"),
        (topic, b"{" + b"x" * (1024 * 1024) + b"}", "payload_too_large"),
        (topic, b'{"type": "\xc3\x28"}', "invalid_utf8"),
        (f"tp/v1/{namespace}/toaster/edge-1/session", encode_event(good), "bad_topic"),
    ]
    for mqtt_topic, payload, _ in bad:
        await mqtt_publish(mqtt_topic, [payload])
    after = session_start(namespace, 2)
    await mqtt_publish(topic, [encode_event(after)])

    try:
        records = await kafka_admin.consume_all(settings.kafka_topic(DLQ), len(bad))
    except TimeoutError as exc:  # twice in CI: 2 and 3 of 6; say what the gateway confirmed
        m = gateway.metrics
        counts = {
            name: m.value(name)
            for name in (
                "tp_gateway_received_total",
                "tp_gateway_in_flight",
                "tp_gateway_forwarded_total",
            )
        }
        dead = {r: m.value("tp_gateway_dead_lettered_total", {"reason": r}) for _, _, r in bad}
        raise AssertionError(f"{exc}; gateway: {counts}, dead: {dead}, {gateway.health()}") from exc
    letters = [DeadLetterV1.model_validate_json(r.value) for r in records]
    assert sorted(x.reason for x in letters) == sorted(reason for _, _, reason in bad)
    for letter in letters:
        payload = next(p for t, p, r in bad if r == letter.reason)
        assert letter.payload_size == len(payload)
        assert (
            base64.b64decode(letter.payload_b64)
            == payload[: len(base64.b64decode(letter.payload_b64))]
        )
        assert letter.payload_truncated == (letter.reason == "payload_too_large")
    forwarded = await kafka_admin.consume_all(settings.kafka_topic(KafkaTopic.WIFI_SESSION), 1)
    assert [decode_event(r.value).id for r in forwarded] == [after.id]

    m = gateway.metrics
    await until(lambda: m.value("tp_gateway_forwarded_total") == 1, what="forwarded == 1")
    for _, _, reason in bad:
        assert m.value("tp_gateway_dead_lettered_total", {"reason": reason}) == 1
    assert m.value("tp_gateway_received_total") == len(bad) + 1
    assert gateway.health().ok


async def test_wrong_shape_topics_and_unknown_sites_are_dead_lettered_not_vanished(
    settings: Settings,
    namespace: str,
    kafka_admin: Any,
    mqtt_publish: Any,
) -> None:
    """Before the catch-all subscription no subscription matched these: the broker answered
    "No matching subscribers" and they appeared in no metric and no dead letter."""
    gateway = await start_gateway(
        settings, f"gw-{namespace}-shape", known_sites=frozenset({"somewhere-else"})
    )
    try:
        event = session_start(namespace, 5)
        payload = encode_event(event)
        wrong = [
            f"tp/v1/{namespace}/wifi/session",  # 5 levels
            f"tp/v1/{namespace}/wifi/edge-1/session/extra",  # 7 levels
            f"tp/v2/{namespace}/wifi/edge-1/session",  # unknown version
            f"tp/v1/{namespace}/wifi/edge-1/gossip",  # unknown stream
        ]
        for topic in wrong:
            await mqtt_publish(topic, [payload])
        await mqtt_publish(topic_for(event), [payload])  # well formed, but not a known site
        await mqtt_publish(f"tp/v1/{namespace}/wifi/edge-1/cmd", [b'{"command": "x"}'])
        letters = [
            DeadLetterV1.model_validate_json(r.value)
            for r in await kafka_admin.consume_all(settings.kafka_topic(DLQ), len(wrong) + 1)
        ]
        assert sorted(x.reason for x in letters) == ["bad_topic"] * len(wrong) + ["unknown_site"]
        assert {x.mqtt_topic for x in letters} == {*wrong, topic_for(event)}
        m = gateway.metrics
        await until(lambda: m.value("tp_gateway_commands_skipped_total") == 1, "cmd skipped")
        assert m.value("tp_gateway_forwarded_total") == 0
    finally:
        await asyncio.to_thread(gateway.stop)


async def test_topic_that_disagrees_with_the_envelope_is_dead_lettered(
    gateway: Gateway,
    settings: Settings,
    namespace: str,
    kafka_admin: Any,
    mqtt_publish: Any,
) -> None:
    payload = encode_event(session_start(namespace, 3))
    claims_other_site = encode_event(session_start(f"{namespace}x", 3))
    await mqtt_publish(f"tp/v1/{namespace}/wifi/edge-1/session", [claims_other_site])
    await mqtt_publish(f"tp/v1/{namespace}/wifi/edge-9/session", [payload])  # another device
    await mqtt_publish(f"tp/v1/{namespace}/camera/edge-1/session", [payload])  # wrong kind
    letters = [
        DeadLetterV1.model_validate_json(r.value)
        for r in await kafka_admin.consume_all(settings.kafka_topic(DLQ), 3)
    ]
    assert [x.reason for x in letters] == ["topic_mismatch"] * 3
    details = " | ".join(x.detail for x in letters)
    for expected in ("topic site", "topic device", "needs device kind"):
        assert expected in details
    await until(
        lambda: (
            gateway.metrics.value("tp_gateway_dead_lettered_total", {"reason": "topic_mismatch"})
            == 3
        ),
        what="counter",
    )
    assert gateway.metrics.value("tp_gateway_forwarded_total") == 0


async def test_two_gateways_in_one_share_group_split_the_messages(
    settings: Settings,
    namespace: str,
    kafka_admin: Any,
    mqtt_publish: Any,
) -> None:
    first = await start_gateway(settings, f"gw-{namespace}-a")
    second = await start_gateway(settings, f"gw-{namespace}-b")
    try:
        events = [session_start(namespace, n) for n in range(200)]
        await mqtt_publish(topic_for(events[0]), [encode_event(e) for e in events])
        records = await kafka_admin.consume_all(
            settings.kafka_topic(KafkaTopic.WIFI_SESSION), len(events)
        )
        ids = [decode_event(r.value).id for r in records]
        assert sorted(ids) == sorted(e.id for e in events)  # each one exactly once

        def count(gw: Gateway) -> float:
            return gw.metrics.value("tp_gateway_forwarded_total")

        await until(lambda: count(first) + count(second) == len(events), what="both counted")
        assert count(first) > 0
        assert count(second) > 0
    finally:
        await asyncio.to_thread(first.stop)
        await asyncio.to_thread(second.stop)


class CrashesBeforeKafkaConfirms(Gateway):
    """A gateway that dies after producing but before serving any delivery callback.

    Its poll thread does nothing, so no delivery is confirmed and nothing is acknowledged;
    then the TCP connection is cut without an MQTT DISCONNECT, as a killed process would.
    """

    def _poll_loop(self) -> None:
        return

    def crash(self) -> None:
        self._draining = True
        self._client.loop_stop()
        sock = self._client.socket()
        if sock is not None:
            sock.close()


async def test_unconfirmed_messages_are_redelivered_after_a_crash(
    settings: Settings,
    namespace: str,
    kafka_admin: Any,
    mqtt_publish: Any,
) -> None:
    client_id = f"gw-{namespace}-crash"
    config = GatewayConfig(
        client_id=client_id, share_group=namespace, site=namespace, session_expiry_s=60
    )
    doomed = CrashesBeforeKafkaConfirms(settings, config)
    await asyncio.to_thread(doomed.start)
    assert await asyncio.to_thread(doomed.wait_subscribed, 30)
    events = [session_start(namespace, n) for n in range(20)]
    await mqtt_publish(topic_for(events[0]), [encode_event(e) for e in events])
    await until(
        lambda: doomed.metrics.value("tp_gateway_received_total") == len(events),
        what="crashing gateway received all",
    )
    doomed.crash()
    # Published while no gateway runs: the broker queues them in the persistent session.
    late = [session_start(namespace, n) for n in range(100, 105)]
    await mqtt_publish(topic_for(late[0]), [encode_event(e) for e in late])

    restarted = await start_gateway(settings, client_id)
    try:
        await until(
            lambda: (
                restarted.metrics.value("tp_gateway_forwarded_total") >= len(events) + len(late)
            ),
            what="redelivery after restart",
        )
        records = await kafka_admin.consume_all(
            settings.kafka_topic(KafkaTopic.WIFI_SESSION), len(events) + len(late)
        )
        assert {decode_event(r.value).id for r in records} == {e.id for e in events + late}
    finally:
        await asyncio.to_thread(restarted.stop)
        await asyncio.to_thread(doomed.stop, 1)


async def test_graceful_stop_acknowledges_everything_it_forwarded(
    settings: Settings,
    namespace: str,
    mqtt_publish: Any,
) -> None:
    client_id = f"gw-{namespace}-drain"
    first = await start_gateway(settings, client_id)
    events = [session_start(namespace, n) for n in range(50)]
    await mqtt_publish(topic_for(events[0]), [encode_event(e) for e in events])
    await until(
        lambda: first.metrics.value("tp_gateway_received_total") == len(events), what="all received"
    )
    await asyncio.to_thread(first.stop)  # drains: flush Kafka, PUBACK, then DISCONNECT
    assert first.metrics.value("tp_gateway_forwarded_total") == len(events)

    second = await start_gateway(settings, client_id)  # resumes the same session
    try:
        marker = session_start(namespace, 999)
        await mqtt_publish(topic_for(marker), [encode_event(marker)])
        await until(
            lambda: second.metrics.value("tp_gateway_forwarded_total") >= 1, what="marker forwarded"
        )
        # The broker resends unacknowledged messages before newer ones: none came back.
        assert second.metrics.value("tp_gateway_received_total") == 1
    finally:
        await asyncio.to_thread(second.stop)
