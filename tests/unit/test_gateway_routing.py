"""Gateway routing without brokers: every event becomes a record or a dead letter."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.settings import Settings
from schemas.codec import decode_event, encode_event
from schemas.device import DeviceHeartbeatV1, HeartbeatData
from schemas.stream_out import DEAD_LETTER_PAYLOAD_CAP, DeadLetterV1
from schemas.topics import KafkaTopic, MqttStream, mqtt_subscription
from stream.gateway.config import GatewayConfig
from stream.gateway.gateway import Gateway
from stream.gateway.routing import route
from tests.support.gateway_samples import session_start, spine_events, topic_for

NOW = datetime(2026, 11, 26, 3, 0, 5, tzinfo=UTC)
SITE = "ben-thanh-market"


def dead(record_value: bytes) -> DeadLetterV1:
    return DeadLetterV1.model_validate_json(record_value)


@pytest.mark.parametrize("event", spine_events(SITE), ids=lambda e: e.type)
def test_valid_event_is_stamped_and_keyed_by_site(event: object) -> None:
    assert hasattr(event, "kafka_topic")
    [record] = route(topic_for(event), encode_event(event), NOW)  # type: ignore[arg-type]
    assert record.reason is None
    assert record.topic is event.kafka_topic  # type: ignore[attr-defined]
    assert record.key == SITE.encode()
    forwarded = decode_event(record.value)
    assert forwarded.ingest_time == NOW
    assert forwarded.model_copy(update={"ingest_time": None}) == event


def _valid() -> bytes:
    return encode_event(session_start(SITE, 7))


def _wrong_types() -> bytes:
    doc = json.loads(_valid())
    doc["data"]["signal_dbm"] = "strong"
    doc["event_time"] = 12
    return json.dumps(doc).encode()


def _unknown_type() -> bytes:
    doc = json.loads(_valid())
    doc["type"] = "wifi.session.teleport"
    return json.dumps(doc).encode()


GOOD_TOPIC = topic_for(session_start(SITE, 7))

BAD_INPUTS = {
    "truncated_json": (GOOD_TOPIC, _valid()[:40], "invalid_json"),
    "wrong_types": (GOOD_TOPIC, _wrong_types(), "schema_violation"),
    "unknown_type": (GOOD_TOPIC, _unknown_type(), "unknown_event_type"),
    "one_megabyte": (GOOD_TOPIC, b"{" + b" " * (1024 * 1024) + b"}", "payload_too_large"),
    "invalid_utf8": (GOOD_TOPIC, b'{"type": "\xff\xfe"}', "invalid_utf8"),
    "json_string": (GOOD_TOPIC, b'"hello"', "not_an_object"),
    "empty_batch": (GOOD_TOPIC, b"[]", "schema_violation"),
    "truncated_batch": (GOOD_TOPIC, b"[" + _valid(), "invalid_json"),
    "huge_batch": (GOOD_TOPIC, b"[" + b" " * (2 * 1024 * 1024) + b"]", "payload_too_large"),
    "empty": (GOOD_TOPIC, b"", "invalid_json"),
    "foreign_topic": ("zigbee2mqtt/bridge/state", _valid(), "bad_topic"),
    "unknown_kind": (f"tp/v1/{SITE}/toaster/edge-1/session", _valid(), "bad_topic"),
    "upper_case_site": ("tp/v1/BEN/wifi/edge-1/session", _valid(), "bad_topic"),
    "invalid_utf8_topic": (b"tp/v1/\xff/wifi/edge-1/session", _valid(), "bad_topic"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=str)
def test_bad_input_becomes_a_dead_letter_with_its_reason(case: str) -> None:
    topic, payload, reason = BAD_INPUTS[case]
    [record] = route(topic, payload, NOW)
    assert record.topic is KafkaTopic.DEAD_LETTER
    assert record.reason == reason
    letter = dead(record.value)
    assert letter.reason == reason
    assert letter.detail
    assert letter.payload_size == len(payload)
    assert letter.received_at == NOW
    kept = base64.b64decode(letter.payload_b64)
    assert kept == payload[:DEAD_LETTER_PAYLOAD_CAP]
    assert letter.payload_truncated == (len(payload) > DEAD_LETTER_PAYLOAD_CAP)


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("tp/v1/other-site/wifi/edge-1/session", "site 'ben-thanh-market' != topic site"),
        (f"tp/v1/{SITE}/wifi/edge-2/session", "device 'edge-1' != topic device"),
        (f"tp/v1/{SITE}/camera/edge-1/session", "needs device kind 'wifi'"),
        (f"tp/v1/{SITE}/wifi/edge-1/heartbeat", "belongs on stream 'session'"),
    ],
    ids=["site", "device", "kind", "stream"],
)
def test_topic_and_envelope_must_agree(topic: str, expected: str) -> None:
    [record] = route(topic, _valid(), NOW)
    assert record.reason == "topic_mismatch"
    assert expected in dead(record.value).detail
    assert record.key == topic.split("/")[2].encode()  # DLQ keyed by the topic's site


def test_event_without_device_kind_is_accepted_under_any_kind() -> None:
    beat = DeviceHeartbeatV1(
        site=SITE, device="cam-1", source="test", event_time=NOW, data=HeartbeatData(uptime_s=1)
    )
    [record] = route(f"tp/v1/{SITE}/camera/cam-1/heartbeat", encode_event(beat), NOW)
    assert record.reason is None
    assert record.topic is KafkaTopic.DEVICE_HEARTBEAT


@settings(max_examples=300, deadline=None)
@given(
    topic=st.one_of(st.text(max_size=80), st.binary(max_size=80)), payload=st.binary(max_size=300)
)
def test_arbitrary_bytes_never_raise(topic: str | bytes, payload: bytes) -> None:
    records = route(topic, payload, NOW)
    assert records
    for record in records:
        assert record.topic is KafkaTopic.DEAD_LETTER
        letter = dead(record.value)
        if letter.batch_index is None:
            assert len(records) == 1
            assert letter.payload_size == len(payload)


def test_subscription_can_be_confined_to_one_site() -> None:
    assert (
        mqtt_subscription(MqttStream.SESSION, "gw", site=SITE)
        == f"$share/gw/tp/v1/{SITE}/+/+/session"
    )
    assert mqtt_subscription(MqttStream.HEARTBEAT) == "tp/v1/+/+/+/heartbeat"
    with pytest.raises(ValueError):
        mqtt_subscription(MqttStream.SESSION, site="#")


def test_an_internal_error_never_escapes_into_paho() -> None:
    """A message object that breaks the handler is logged and counted, not raised."""
    gateway = Gateway(Settings(topic_namespace="unit"), GatewayConfig(client_id="unit"))

    class Broken:
        mid, qos = 1, 1

        @property
        def topic(self) -> str:
            raise RuntimeError("boom")

    gateway._on_message(gateway._client, None, Broken())  # type: ignore[arg-type]
    assert gateway.metrics.value("tp_gateway_produce_errors_total", {"error": "internal"}) == 1
    assert gateway.in_flight == 0
