"""Reading a Kafka record of a batched topic: one event or a batch, each element judged
alone (schemas.batch.decode_record), as the occupancy and flows workers do."""

from __future__ import annotations

import json

from schemas.batch import MAX_BATCH_EVENTS, Rejected, decode_record, join_batch
from schemas.codec import DeadLetterReason, encode_event
from schemas.envelope import EventBase
from schemas.wifi import WifiSessionStopV1
from stream.wifi.batch import WIFI_SESSION_TYPES
from tests.support.gateway_samples import session_start, spine_events

SITE = "nguyen-hue-walking-street"


def _ids(items: list[EventBase | Rejected]) -> list[str | None]:
    return [i.id if isinstance(i, EventBase) else None for i in items]


def test_a_single_event_and_a_batch_read_the_same() -> None:
    events = [session_start(SITE, n) for n in range(3)]
    encoded = [encode_event(e) for e in events]
    assert _ids(decode_record(encoded[0])) == [events[0].id]
    assert _ids(decode_record(join_batch(encoded))) == [e.id for e in events]


def test_bad_elements_are_rejected_alone_with_their_index_and_bytes() -> None:
    good = [encode_event(session_start(SITE, n)) for n in range(2)]
    wrong = json.loads(good[0])
    wrong["data"]["signal_dbm"] = "strong"
    record = b"[" + b",".join([good[0], json.dumps(wrong).encode(), b"17", good[1]]) + b"]"
    items = decode_record(record)
    assert _ids(items)[0] is not None and _ids(items)[3] is not None
    bad = [i for i in items if isinstance(i, Rejected)]
    assert [(r.error.reason, r.error.detail.split(":")[0]) for r in bad] == [
        (DeadLetterReason.SCHEMA_VIOLATION, "batch element 1"),
        (DeadLetterReason.NOT_AN_OBJECT, "batch element 2"),
    ]
    assert json.loads(bad[0].raw)["data"]["signal_dbm"] == "strong" and bad[1].raw == b"17"


def test_an_event_that_does_not_belong_on_the_topic_is_a_topic_mismatch() -> None:
    event = session_start(SITE, 1)
    start = encode_event(event)
    assert _ids(decode_record(start, WIFI_SESSION_TYPES)) == [event.id]
    [item] = decode_record(start, (WifiSessionStopV1,))
    assert isinstance(item, Rejected) and item.error.reason is DeadLetterReason.TOPIC_MISMATCH


def test_unreadable_or_oversized_records_are_one_rejection_of_the_whole() -> None:
    one = encode_event(session_start(SITE, 1))
    for record in (b"[" + one, b"[]", join_batch([one] * (MAX_BATCH_EVENTS + 1)), b"\xff"):
        [item] = decode_record(record)
        assert isinstance(item, Rejected) and item.raw == record


def test_with_the_topics_types_each_bad_element_keeps_its_own_reason() -> None:
    """Every way an element can be wrong on a Wi-Fi topic costs only that element, with a
    reason, and never raises (a list as the type once raised TypeError in the worker)."""
    start, _, stop, heartbeat, _ = spine_events(SITE)
    good = json.loads(encode_event(start))
    wrong = [
        {**good, "type": ["wifi.session_start"]},  # unhashable: it used to raise TypeError
        {**good, "version": True},  # a bool is no version
        {**good, "version": 2},
        json.loads(encode_event(heartbeat)),
        {**good, "data": {**good["data"], "signal_dbm": "strong"}},
        17,
    ]
    record = join_batch([encode_event(start), *(json.dumps(w).encode() for w in wrong)])
    record = record[:-1] + b"," + encode_event(stop) + b"]"
    items = decode_record(record, WIFI_SESSION_TYPES)
    assert items[0] == start and items[-1] == stop
    assert [(r.error.reason, r.error.detail.split(":")[0]) for r in items[1:-1]] == [  # type: ignore[union-attr]
        (DeadLetterReason.UNKNOWN_EVENT_TYPE, "batch element 1"),
        (DeadLetterReason.UNKNOWN_EVENT_TYPE, "batch element 2"),
        (DeadLetterReason.UNKNOWN_EVENT_TYPE, "batch element 3"),
        (DeadLetterReason.TOPIC_MISMATCH, "batch element 4"),
        (DeadLetterReason.SCHEMA_VIOLATION, "batch element 5"),
        (DeadLetterReason.NOT_AN_OBJECT, "batch element 6"),
    ]
