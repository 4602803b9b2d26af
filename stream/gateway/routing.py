"""Turn one MQTT message into exactly one Kafka record: the event, or a dead letter.

Pure functions with no broker in sight, so every classification (bad topic, mismatch,
contract violation) is unit-testable and the network code stays a thin shell. Nothing here
raises for any input: an unexpected exception while decoding becomes a dead letter too,
because "bad input never crashes anything and is never silently dropped".
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from schemas.codec import ContractError, DeadLetterReason, decode_event, encode_event
from schemas.envelope import EventBase
from schemas.stream_out import DEAD_LETTER_PAYLOAD_CAP, DeadLetterV1
from schemas.topics import KafkaTopic, MqttTopic

_DETAIL_MAX = 2000
_TOPIC_MAX = 512

#: Topics repeat for every event of a device, and parsing one (regex, two enum lookups) is
#: a sizeable share of the per-event cost; the cache is bounded by the device fleet.
_parse_topic = lru_cache(maxsize=16384)(MqttTopic.parse)


@dataclass(frozen=True, slots=True)
class Record:
    """What to produce: logical Kafka topic (namespaced later), key and value."""

    topic: KafkaTopic
    key: bytes | None
    value: bytes
    #: The dead-letter reason, or None for a forwarded event (drives the metrics).
    reason: str | None = None


def route(raw_topic: bytes | str, payload: bytes, now: datetime) -> Record:
    """Validate one message against its topic and the contract; never raises."""
    topic_text = raw_topic if isinstance(raw_topic, str) else _topic_text(raw_topic)
    if topic_text is None:
        return dead_letter(DeadLetterReason.BAD_TOPIC, "topic is not valid UTF-8",
                           repr(raw_topic), payload, now)
    try:
        topic = _parse_topic(topic_text)
    except ValueError as exc:
        return dead_letter(DeadLetterReason.BAD_TOPIC, str(exc), topic_text, payload, now)
    try:
        event = decode_event(payload)
    except ContractError as exc:
        return dead_letter(exc.reason, exc.detail, topic_text, payload, now, key=topic.site)
    except Exception as exc:  # a decoder bug must not stop the gateway; keep the evidence
        return dead_letter(DeadLetterReason.SCHEMA_VIOLATION,
                           f"unexpected {type(exc).__name__}: {exc}", topic_text, payload, now,
                           key=topic.site)
    mismatch = topic_mismatch(topic, event)
    if mismatch:
        return dead_letter(DeadLetterReason.TOPIC_MISMATCH, mismatch, topic_text, payload, now,
                           key=topic.site)
    stamped = event.model_copy(update={"ingest_time": now})
    return Record(event.kafka_topic, event.partition_key(), encode_event(stamped))


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
        problems.append(f"{event.type} needs device kind {event.device_kind.value!r}, "
                        f"topic has {topic.kind.value!r}")
    if topic.stream != event.mqtt_stream:
        problems.append(f"{event.type} belongs on stream {event.mqtt_stream.value!r}, "
                        f"topic has {topic.stream.value!r}")
    return "; ".join(problems) or None


def dead_letter(
    reason: DeadLetterReason,
    detail: str,
    mqtt_topic: str,
    payload: bytes,
    now: datetime,
    key: str | None = None,
) -> Record:
    """A DLQ record keeping a capped copy of the raw bytes, so nothing is silently lost."""
    letter = DeadLetterV1(
        reason=reason.value,
        detail=detail[:_DETAIL_MAX],
        mqtt_topic=mqtt_topic[:_TOPIC_MAX],
        received_at=now,
        payload_size=len(payload),
        payload_b64=base64.b64encode(payload[:DEAD_LETTER_PAYLOAD_CAP]).decode("ascii"),
        payload_truncated=len(payload) > DEAD_LETTER_PAYLOAD_CAP,
    )
    return Record(
        KafkaTopic.DEAD_LETTER,
        key.encode() if key else None,
        letter.model_dump_json().encode(),
        reason=reason.value,
    )


def _topic_text(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
