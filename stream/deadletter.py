"""Dead letters: the record every stream stage produces for input it cannot use.

The gateway (MQTT input) and the workers (Kafka input) both dead-letter, so the record and
its builder live here rather than in either of them: a worker must not depend on the
gateway. A dead letter keeps a capped copy of the raw bytes with the reason, so nothing is
silently lost and an operator can replay or inspect it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from schemas.codec import DeadLetterReason
from schemas.stream_out import DEAD_LETTER_PAYLOAD_CAP, DeadLetterV1
from schemas.topics import KafkaTopic

_DETAIL_MAX = 2000
_TOPIC_MAX = 512


@dataclass(frozen=True, slots=True)
class Record:
    """What to produce: logical Kafka topic (namespaced later), key and value."""

    topic: KafkaTopic
    key: bytes | None
    value: bytes
    #: The dead-letter reason, or None for a forwarded event (drives the metrics).
    reason: str | None = None
    #: Events the record carries: more than one for a batch (``schemas.topics.BATCHED_TOPICS``).
    events: int = 1


def dead_letter(
    reason: DeadLetterReason,
    detail: str,
    mqtt_topic: str,
    payload: bytes,
    now: datetime,
    key: str | None = None,
    batch_index: int | None = None,
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
        batch_index=batch_index,
    )
    return Record(
        KafkaTopic.DEAD_LETTER,
        key.encode() if key else None,
        letter.__pydantic_serializer__.to_json(letter),
        reason=reason.value,
    )
