"""The event contract: round trips, forward compatibility, error reasons and schema drift."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from schemas import (
    EVENT_MODELS,
    ContractError,
    DeadLetterReason,
    DeviceKind,
    MqttStream,
    MqttTopic,
    WifiSessionData,
    WifiSessionStartV1,
    decode_event,
    encode_event,
    mqtt_subscription,
)
from schemas.export import SCHEMA_DIR, schema_documents


def _start(**overrides: object) -> WifiSessionStartV1:
    fields: dict[str, object] = {
        "site": "ben-thanh-market",
        "device": "ben-thanh-market-edge",
        "source": "test",
        "event_time": datetime(2026, 11, 26, 3, 0, tzinfo=UTC),
        "data": WifiSessionData(client_id="0f" * 16, session_id="s-1", ap="ben-thanh-market-ap01"),
    }
    fields.update(overrides)
    return WifiSessionStartV1.model_validate(fields)


def test_round_trip_keeps_every_field() -> None:
    event = _start()
    decoded = decode_event(encode_event(event))
    assert decoded == event
    assert isinstance(decoded, WifiSessionStartV1)


def test_unknown_fields_are_ignored_so_adding_a_field_is_not_breaking() -> None:
    doc = json.loads(encode_event(_start()))
    doc["added_in_a_later_release"] = 1
    doc["data"]["new_metric"] = 2
    assert decode_event(json.dumps(doc).encode()).id == doc["id"]


def test_event_ids_are_unique() -> None:
    assert len({_start().id for _ in range(1000)}) == 1000


def test_naive_event_time_is_refused() -> None:
    doc = json.loads(encode_event(_start()))
    doc["event_time"] = "2026-11-26T03:00:00"
    with pytest.raises(ContractError) as err:
        decode_event(json.dumps(doc).encode())
    assert err.value.reason is DeadLetterReason.SCHEMA_VIOLATION
    assert "event_time" in err.value.detail


def test_a_violation_is_named_by_its_full_field_path() -> None:
    doc = json.loads(encode_event(_start()))
    doc["data"]["client_id"] = "not-hex"
    with pytest.raises(ContractError) as err:
        decode_event(json.dumps(doc).encode())
    assert err.value.detail.startswith("data.client_id: ")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"type": "wifi.session.start", "vers', DeadLetterReason.INVALID_JSON),
        (b"\xff\xfe{}", DeadLetterReason.INVALID_UTF8),
        (b"[1, 2]", DeadLetterReason.NOT_AN_OBJECT),
        (b'{"type": "wifi.teleport", "version": 1}', DeadLetterReason.UNKNOWN_EVENT_TYPE),
        (b'{"type": "wifi.session.start", "version": 9}', DeadLetterReason.UNKNOWN_EVENT_TYPE),
        (
            b'{"type": "wifi.session.start", "version": 1, "site": 5}',
            DeadLetterReason.SCHEMA_VIOLATION,
        ),
        (b"x" * (1024 * 1024), DeadLetterReason.PAYLOAD_TOO_LARGE),
    ],
)
def test_bad_input_is_classified(raw: bytes, reason: DeadLetterReason) -> None:
    with pytest.raises(ContractError) as err:
        decode_event(raw)
    assert err.value.reason is reason


def test_raw_mac_is_not_a_valid_client_id() -> None:
    doc = json.loads(encode_event(_start()))
    doc["data"]["client_id"] = "aa:bb:cc:dd:ee:ff"
    with pytest.raises(ContractError):
        decode_event(json.dumps(doc).encode())


def test_mqtt_topics_build_parse_and_refuse_injection() -> None:
    topic = MqttTopic.build("ben-thanh-market", DeviceKind.WIFI, "edge-1", MqttStream.SESSION)
    assert str(topic) == "tp/v1/ben-thanh-market/wifi/edge-1/session"
    assert MqttTopic.parse(str(topic)) == topic
    with pytest.raises(ValueError, match="invalid site"):
        MqttTopic.build("a/#", DeviceKind.WIFI, "edge-1", MqttStream.SESSION)
    with pytest.raises(ValueError):
        MqttTopic.parse("tp/v1/site/unknown-kind/dev/session")
    assert mqtt_subscription(MqttStream.SESSION, "gw") == "$share/gw/tp/v1/+/+/+/session"


def test_every_model_names_its_topics_and_versions_are_unique() -> None:
    tags = set()
    for model in EVENT_MODELS:
        assert model.kafka_topic.value.startswith("tp.") and model.kafka_topic.value[-3:-1] == ".v"
        tags.add((model.model_fields["type"].default, model.model_fields["version"].default))
    assert len(tags) == len(EVENT_MODELS)


def test_committed_json_schemas_match_the_models() -> None:
    expected = schema_documents()
    committed = {p.name: p.read_text(encoding="utf-8") for p in SCHEMA_DIR.glob("*.json")}
    assert sorted(committed) == sorted(expected), "run `tourpulse schemas export` and commit"
    for name, text in expected.items():
        assert committed[name] == text, f"{name} drifted: run `tourpulse schemas export`"
