"""Turn one MQTT message into Kafka records: its events, or dead letters.

A payload is one event (a JSON object) or a batch of one device's events (a JSON array,
see :mod:`schemas.batch`). Each batch element is judged on its own: valid ones become
records in their original order, bad ones become one dead letter each with their index; a
payload that cannot be read at all becomes a single dead letter.

Pure functions with no broker in sight, so every classification (bad topic, mismatch,
contract violation) is unit-testable and the network code stays a thin shell. Nothing here
raises for any input: an unexpected exception while decoding becomes a dead letter too,
because "bad input never crashes anything and is never silently dropped".

Forwarded events are the validated model re-serialised (unknown fields stripped, values
normalised), with ``ingest_time`` spliced into the bytes rather than copying the model:
the copy and a second serialisation were a fifth of the gateway's per-event work.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from pydantic import AwareDatetime, TypeAdapter

from schemas.batch import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, element_bytes, is_batch, join_batch
from schemas.codec import (
    MAX_EVENT_BYTES,
    ContractError,
    DeadLetterReason,
    encode_event,
    parse_json,
    validate_event,
)
from schemas.envelope import EventBase
from schemas.topics import BATCHED_TOPICS, MqttStream, MqttTopic
from stream.deadletter import Record, dead_letter

_NO_INGEST_TIME = b'"ingest_time":null'
#: Largest batch record the gateway builds: far below Kafka's default message limit
#: (1 MB, which a full MQTT batch plus its ingest-time stamps could pass); a longer run of
#: events is split into several records.
MAX_RECORD_BYTES = 512 * 1024
_DATETIME: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)

#: Topics repeat for every event of a device, and parsing one (regex, two enum lookups) is
#: a sizeable share of the per-event cost; the cache is bounded by the device fleet.
_parse_topic = lru_cache(maxsize=16384)(MqttTopic.parse)


def route(
    raw_topic: bytes | str,
    payload: bytes,
    now: datetime,
    known_sites: frozenset[str] | None = None,
) -> list[Record]:
    """Validate one message against its topic and the contract; never raises.

    ``known_sites``: the sites of the deployment's device configs; a message for any other
    site is dead-lettered (None: no check, for tests and tools with synthetic sites).
    Returns at least one record, in the order of the events in the payload.
    """
    topic_text = raw_topic if isinstance(raw_topic, str) else _topic_text(raw_topic)
    if topic_text is None:
        return [
            dead_letter(
                DeadLetterReason.BAD_TOPIC,
                "topic is not valid UTF-8",
                repr(raw_topic),
                payload,
                now,
            )
        ]
    try:
        topic = _parse_topic(topic_text)
    except ValueError as exc:
        return [dead_letter(DeadLetterReason.BAD_TOPIC, str(exc), topic_text, payload, now)]
    if known_sites is not None and topic.site not in known_sites:
        detail = f"site {topic.site!r} is not in the device configs"
        return [dead_letter(DeadLetterReason.UNKNOWN_SITE, detail, topic_text, payload, now)]
    try:
        batch = is_batch(payload)
        limit = MAX_BATCH_BYTES if batch else MAX_EVENT_BYTES
        if len(payload) > limit:
            raise ContractError(
                DeadLetterReason.PAYLOAD_TOO_LARGE, f"{len(payload)} bytes > limit {limit}"
            )
        doc = parse_json(payload)
        if not batch:
            return [_event_record(topic, topic_text, doc, payload, now)]
        if not doc or len(doc) > MAX_BATCH_EVENTS:
            raise ContractError(
                DeadLetterReason.SCHEMA_VIOLATION,
                f"a batch holds 1 to {MAX_BATCH_EVENTS} events, got {len(doc)}",
            )
        stamp = _ingest_time_field(now)
        records = [
            _event_record(topic, topic_text, item, None, now, i, stamp)
            for i, item in enumerate(doc)
        ]
        return _grouped(records)
    except ContractError as exc:
        return [dead_letter(exc.reason, exc.detail, topic_text, payload, now, key=topic.site)]
    except Exception as exc:  # a decoder bug must not stop the gateway; keep the evidence
        return [
            dead_letter(
                DeadLetterReason.SCHEMA_VIOLATION,
                f"unexpected {type(exc).__name__}: {exc}",
                topic_text,
                payload,
                now,
                key=topic.site,
            )
        ]


def _grouped(records: list[Record]) -> list[Record]:
    """Runs of forwarded events on a batched topic (``BATCHED_TOPICS``) as one record each.

    A run ends at a dead letter, at a change of topic or key, or before it would pass
    :data:`MAX_RECORD_BYTES`, so every key's events stay in the payload's order, as they
    did with one record per event.
    """
    out: list[Record] = []
    run: list[Record] = []
    size = 0

    def flush() -> None:
        if len(run) > 1:
            value = join_batch([r.value for r in run])
            out.append(Record(run[0].topic, run[0].key, value, events=len(run)))
        else:
            out.extend(run)
        run.clear()

    for record in records:
        if record.reason is None and record.topic in BATCHED_TOPICS:
            if run and (
                (run[0].topic, run[0].key) != (record.topic, record.key)
                or size + len(record.value) + 1 > MAX_RECORD_BYTES
            ):
                flush()
            if not run:
                size = 1
            run.append(record)
            size += len(record.value) + 1
        else:
            flush()
            out.append(record)
    flush()
    return out


def is_command_topic(topic: str) -> bool:
    """A well-formed platform -> device command topic (the gateway never ingests those)."""
    if not topic.endswith("/" + MqttStream.CMD.value):
        return False
    try:
        return _parse_topic(topic).stream is MqttStream.CMD
    except ValueError:
        return False  # wrong shape: dead-lettered like any other bad topic


def _event_record(
    topic: MqttTopic,
    topic_text: str,
    doc: Any,
    payload: bytes | None,
    now: datetime,
    index: int | None = None,
    stamp: bytes | None = None,
) -> Record:
    """One parsed JSON value as an event record or a dead letter; never raises.

    ``payload`` is the raw message for a single event; for a batch element it is None and
    the dead letter keeps the element re-serialised, with its ``index`` in the batch.
    """
    try:
        event = validate_event(doc)
        mismatch = topic_mismatch(topic, event)
        if mismatch:
            raise ContractError(DeadLetterReason.TOPIC_MISMATCH, mismatch)
        return Record(
            event.kafka_topic,
            event.partition_key(),
            _stamped(event, stamp or _ingest_time_field(now), now),
        )
    except Exception as exc:  # ContractError, or a bug: the evidence goes to the DLQ
        if isinstance(exc, ContractError):
            reason, detail = exc.reason, exc.detail
        else:
            reason = DeadLetterReason.SCHEMA_VIOLATION
            detail = f"unexpected {type(exc).__name__}: {exc}"
        if payload is None:
            detail = f"batch element {index}: {detail}"
            payload = element_bytes(doc)
        return dead_letter(
            reason, detail, topic_text, payload, now, key=topic.site, batch_index=index
        )


def _ingest_time_field(now: datetime) -> bytes:
    """``"ingest_time":"<now>"`` formatted exactly as pydantic serialises datetimes."""
    return b'"ingest_time":' + _DATETIME.dump_json(now)


def _stamped(event: EventBase, stamp: bytes, now: datetime) -> bytes:
    """The event's JSON with ``ingest_time`` set to the field ``stamp`` (for ``now``).

    The envelope's fields serialise before ``data`` and no id can hold an unescaped quote,
    so the first ``"ingest_time":null`` is the envelope's own. An event that arrives with
    an ingest time already set (devices should not) takes the slow, obvious path.
    """
    if event.ingest_time is None:
        raw = encode_event(event)
        if _NO_INGEST_TIME in raw:
            return raw.replace(_NO_INGEST_TIME, stamp, 1)
    return encode_event(event.model_copy(update={"ingest_time": now}))


def topic_mismatch(topic: MqttTopic, event: EventBase) -> str | None:
    """Why the topic and the envelope disagree, or None when they agree.

    A device may only speak for itself: an event claiming another site or device than the
    topic it was published on (where broker ACLs bind devices) is refused, not trusted.
    """
    problems = []
    if topic.site != event.site:
        problems.append(f"site {event.site!r} != topic site {topic.site!r}")
    if topic.device != event.device:
        problems.append(f"device {event.device!r} != topic device {topic.device!r}")
    if event.device_kind is not None and topic.kind != event.device_kind:
        problems.append(
            f"{event.type} needs device kind {event.device_kind.value!r}, "
            f"topic has {topic.kind.value!r}"
        )
    if topic.stream != event.mqtt_stream:
        problems.append(
            f"{event.type} belongs on stream {event.mqtt_stream.value!r}, "
            f"topic has {topic.stream.value!r}"
        )
    return "; ".join(problems) or None


def _topic_text(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
