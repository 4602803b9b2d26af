"""Batched payloads through the real gateway, Mosquitto and Kafka on 127.0.0.1.

The at-least-once rule for batches: the MQTT message is acknowledged only once Kafka has
confirmed every one of its records (forwarded events and dead letters alike); a gateway
that dies before that gets the whole batch redelivered.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from core.settings import Settings
from schemas.batch import join_batch
from schemas.codec import decode_event, encode_event
from schemas.stream_out import DeadLetterV1
from schemas.topics import KafkaTopic
from stream.deadletter import Record
from stream.gateway.config import GatewayConfig
from stream.gateway.gateway import Gateway, _Pending
from tests.integration.test_gateway import CrashesBeforeKafkaConfirms, start_gateway
from tests.support.gateway_samples import session_start, topic_for
from tests.support.net import until

pytestmark = pytest.mark.integration


class HoldsOneConfirmation(Gateway):
    """Holds back Kafka's confirmation of the record containing ``held_id``; logs acks."""

    held_id = b""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held: list[tuple[Record, _Pending, Any, Any]] = []
        self.acked: list[int] = []
        self._held_lock = threading.Lock()

    def _on_delivery(self, record: Record, pending: _Pending, err: Any, msg: Any) -> None:
        if err is None and self.held_id and self.held_id in record.value:
            with self._held_lock:
                self.held.append((record, pending, err, msg))
            return
        super()._on_delivery(record, pending, err, msg)

    def release(self) -> None:
        with self._held_lock:
            held, self.held = self.held, []
        for args in held:
            super()._on_delivery(*args)

    def _ack(self, pending: _Pending) -> None:
        self.acked.append(pending.mid)
        super()._ack(pending)


async def test_batch_is_acknowledged_only_after_every_record_is_confirmed(
    settings: Settings,
    namespace: str,
    kafka_admin: Any,
    mqtt_publish: Any,
) -> None:
    ns = namespace
    config = GatewayConfig(client_id=f"gw-{ns}-hold", share_group=ns, site=ns, session_expiry_s=60)
    gateway = HoldsOneConfirmation(settings, config)
    events = [session_start(ns, n) for n in range(30)]
    gateway.held_id = events[-1].id.encode()
    await asyncio.to_thread(gateway.start)
    try:
        assert await asyncio.to_thread(gateway.wait_subscribed, 30)
        parts = [encode_event(e) for e in events]
        parts.insert(10, b'{"type": "wifi.session.teleport", "version": 1}')
        await mqtt_publish(topic_for(events[0]), [join_batch(parts)])

        m = gateway.metrics
        # Records: events 0-9 (one batch record), the dead letter, events 10-29 (held).
        await until(
            lambda: (
                m.value("tp_gateway_forwarded_total") == 10
                and m.value("tp_gateway_dead_lettered_total", {"reason": "unknown_event_type"}) == 1
            ),
            what="all but the held record confirmed",
        )
        assert len(gateway.held) == 1
        assert gateway.acked == []  # one record unconfirmed: the message stays unacked
        assert gateway.in_flight == 1
        assert m.value("tp_gateway_messages_total") == 1
        assert m.value("tp_gateway_received_total") == len(events) + 1

        await asyncio.to_thread(gateway.release)
        assert len(gateway.acked) == 1
        assert gateway.in_flight == 0

        assert m.value("tp_gateway_forwarded_total") == len(events)
        records = await kafka_admin.consume_events(
            settings.kafka_topic(KafkaTopic.WIFI_SESSION), len(events)
        )
        # One key (the site) = one partition, so Kafka keeps the batch's order.
        assert [decode_event(r).id for r in records] == [e.id for e in events]
        [letter] = await kafka_admin.consume_all(settings.kafka_topic(KafkaTopic.DEAD_LETTER), 1)
        dead = DeadLetterV1.model_validate_json(letter.value)
        assert (dead.reason, dead.batch_index) == ("unknown_event_type", 10)
    finally:
        await asyncio.to_thread(gateway.stop)


async def test_unconfirmed_batches_are_redelivered_whole_after_a_crash(
    settings: Settings,
    namespace: str,
    kafka_admin: Any,
    mqtt_publish: Any,
) -> None:
    client_id = f"gw-{namespace}-bcrash"
    config = GatewayConfig(
        client_id=client_id, share_group=namespace, site=namespace, session_expiry_s=60
    )
    doomed = CrashesBeforeKafkaConfirms(settings, config)
    await asyncio.to_thread(doomed.start)
    assert await asyncio.to_thread(doomed.wait_subscribed, 30)
    events = [session_start(namespace, n) for n in range(60)]
    topic = topic_for(events[0])
    await mqtt_publish(
        topic,
        [
            join_batch([encode_event(e) for e in events[i : i + 20]])
            for i in range(0, len(events), 20)
        ],
    )
    await until(
        lambda: doomed.metrics.value("tp_gateway_received_total") == len(events),
        what="crashing gateway received every element",
    )
    doomed.crash()

    restarted = await start_gateway(settings, client_id)
    try:
        await until(
            lambda: restarted.metrics.value("tp_gateway_forwarded_total") >= len(events),
            what="redelivery after restart",
        )
        records = await kafka_admin.consume_events(
            settings.kafka_topic(KafkaTopic.WIFI_SESSION), len(events)
        )
        assert {decode_event(r).id for r in records} == {e.id for e in events}
    finally:
        await asyncio.to_thread(restarted.stop)
        await asyncio.to_thread(doomed.stop, 1)
