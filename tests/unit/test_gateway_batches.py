"""Batched payloads (schemas.batch) through gateway routing, without brokers.

Each element is judged alone: valid ones are forwarded in payload order, bad ones become
one dead letter each with their index, and only an unreadable payload is one dead letter.
On a batched topic (``BATCHED_TOPICS``) a run of valid events is one record.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from schemas.batch import MAX_BATCH_EVENTS, decode_events, decode_record, is_batch, join_batch
from schemas.batch_schema import EventBatchV1
from schemas.codec import decode_event, encode_event
from schemas.envelope import EventBase
from schemas.stream_out import DeadLetterV1
from schemas.topics import KafkaTopic
from stream.gateway import routing
from stream.gateway.routing import route
from tests.support.gateway_samples import session_start, topic_for

NOW = datetime(2026, 11, 26, 3, 0, 5, tzinfo=UTC)
SITE = "nguyen-hue-walking-street"
TOPIC = topic_for(session_start(SITE, 0))


def _batch(*parts: bytes) -> bytes:
    return b"[" + b",".join(parts) + b"]"


def test_valid_batch_is_forwarded_in_order_stamped_and_keyed_by_site() -> None:
    events = [session_start(SITE, n) for n in range(50)]
    [record] = route(TOPIC, join_batch([encode_event(e) for e in events]), NOW)
    assert (record.reason, record.topic, record.key) == (
        None,
        KafkaTopic.WIFI_SESSION,
        SITE.encode(),
    )
    assert record.events == 50 and is_batch(record.value)
    forwarded = [e for e in decode_record(record.value) if isinstance(e, EventBase)]
    assert [f.id for f in forwarded] == [e.id for e in events]
    assert all(f.ingest_time == NOW for f in forwarded)
    assert [f.model_copy(update={"ingest_time": None}) for f in forwarded] == events


def test_mixed_batch_dead_letters_each_bad_element_with_its_index_and_reason() -> None:
    good = [encode_event(session_start(SITE, n)) for n in range(4)]
    wrong_types = json.loads(good[0])
    wrong_types["data"]["signal_dbm"] = "strong"
    unknown = {**json.loads(good[0]), "type": "wifi.session.teleport"}
    other_device = encode_event(session_start(SITE, 9, device="edge-2"))
    payload = _batch(
        good[0],
        json.dumps(wrong_types).encode(),
        good[1],
        b"17",
        json.dumps(unknown).encode(),
        good[2],
        other_device,
        good[3],
    )
    records = route(TOPIC, payload, NOW)
    assert [r.reason for r in records] == [
        None,
        "schema_violation",
        None,
        "not_an_object",
        "unknown_event_type",
        None,
        "topic_mismatch",
        None,
    ]
    letters = {
        i: DeadLetterV1.model_validate_json(r.value) for i, r in enumerate(records) if r.reason
    }
    for index, letter in letters.items():
        assert letter.batch_index == index
        assert letter.detail.startswith(f"batch element {index}: ")
        assert letter.mqtt_topic == TOPIC
        assert letter.received_at == NOW
    assert "device 'edge-2' != topic device 'edge-1'" in letters[6].detail
    assert json.loads(_b64(letters[3])) == 17
    assert json.loads(_b64(letters[4]))["type"] == "wifi.session.teleport"
    assert all(r.key == SITE.encode() for r in records)  # dead letters too: by topic site
    kept = [decode_event(r.value).id for r in records if r.reason is None]
    assert kept == [decode_event(g).id for g in good]


def test_dead_letters_split_the_runs_and_keep_the_order() -> None:
    good = [encode_event(session_start(SITE, n)) for n in range(4)]
    records = route(TOPIC, _batch(good[0], good[1], b"17", good[2], good[3]), NOW)
    assert [(r.reason, r.events) for r in records] == [
        (None, 2),
        ("not_an_object", 1),
        (None, 2),
    ]
    ids = [e.id for r in records if r.reason is None for e in decode_events(r.value)]
    assert ids == [decode_event(g).id for g in good]


def test_a_long_run_is_split_below_the_record_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    events = [session_start(SITE, n) for n in range(40)]
    one = len(route(TOPIC, encode_event(events[0]), NOW)[0].value)
    monkeypatch.setattr(routing, "MAX_RECORD_BYTES", 10 * one)
    records = route(TOPIC, join_batch([encode_event(e) for e in events]), NOW)
    assert all(len(r.value) <= 10 * one for r in records) and len(records) >= 4
    assert sum(r.events for r in records) == 40
    ids = [e.id for r in records for e in decode_events(r.value)]
    assert ids == [e.id for e in events]


def test_an_unreadable_batch_is_one_dead_letter_without_an_index() -> None:
    payload = _batch(encode_event(session_start(SITE, 1)))[:-5]
    [record] = route(TOPIC, payload, NOW)
    assert record.reason == "invalid_json"
    letter = DeadLetterV1.model_validate_json(record.value)
    assert letter.batch_index is None
    assert letter.payload_size == len(payload)


def test_a_batch_over_the_event_limit_is_refused_whole() -> None:
    one = encode_event(session_start(SITE, 1))
    [record] = route(TOPIC, _batch(*[one] * (MAX_BATCH_EVENTS + 1)), NOW)
    assert record.reason == "schema_violation"
    assert str(MAX_BATCH_EVENTS) in DeadLetterV1.model_validate_json(record.value).detail


def test_device_supplied_ingest_time_is_overwritten() -> None:
    event = session_start(SITE, 1).model_copy(
        update={"ingest_time": datetime(2020, 1, 1, tzinfo=UTC)}
    )
    [record] = route(TOPIC, encode_event(event), NOW)
    assert decode_event(record.value).ingest_time == NOW


def test_unknown_fields_are_stripped_before_kafka() -> None:
    doc = json.loads(encode_event(session_start(SITE, 1)))
    doc["raw_mac"] = "aa:bb:cc:dd:ee:ff"
    doc["data"]["ingest_time"] = None  # a nested look-alike must not be taken for the stamp
    [record] = route(TOPIC, _batch(json.dumps(doc).encode(), json.dumps(doc).encode()), NOW)
    assert record.reason is None and record.events == 2
    assert b"raw_mac" not in record.value
    events = [e for e in decode_record(record.value) if isinstance(e, EventBase)]
    assert [e.ingest_time for e in events] == [NOW, NOW]


def test_join_batch_keeps_single_events_bare() -> None:
    one = encode_event(session_start(SITE, 1))
    assert join_batch([one]) == one
    assert not is_batch(one)
    two = join_batch([one, one])
    assert is_batch(two) and is_batch(b" \n" + two)
    assert len(EventBatchV1.model_validate_json(two).root) == 2


@pytest.mark.parametrize("size", [0, MAX_BATCH_EVENTS + 1])
def test_batch_model_documents_the_size_limits(size: int) -> None:
    one = encode_event(session_start(SITE, 1))
    with pytest.raises(ValueError):
        EventBatchV1.model_validate_json(_batch(*[one] * size))


def _b64(letter: DeadLetterV1) -> bytes:
    return base64.b64decode(letter.payload_b64)
