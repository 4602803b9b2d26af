"""Batches: one MQTT payload carrying several events of one device.

Per-message costs (an MQTT packet, a PUBACK, a paho callback on both ends, broker routing)
dwarf the cost of one small event, so a device sending many events packs them into a JSON
array of envelopes on its usual topic. A single event stays a bare JSON object: a device
with little to say sends exactly what it sent before batches existed.

Every element must belong on the topic it travels on (same site, device, device kind and
stream). The gateway validates each element on its own: valid ones are forwarded in order,
invalid ones are dead-lettered one by one with their index; only a payload that is not a
JSON array at all, or is too big, becomes one dead letter for the whole message.

On the Kafka topics of ``schemas.topics.BATCHED_TOPICS`` the gateway forwards a batch's
valid events as one record in the same format; :func:`decode_record` is how the
consumers of those topics read a record, judging each element on its own as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.codec import ContractError, DeadLetterReason, decode_event, parse_json, validate_event
from schemas.envelope import EventBase

#: Most events in one batch; publishers default to far fewer (see edge.simulator).
MAX_BATCH_EVENTS = 1000
#: Largest batch payload accepted (the per-event limit is ``codec.MAX_EVENT_BYTES``).
MAX_BATCH_BYTES = 1024 * 1024


def is_batch(payload: bytes) -> bool:
    """True when ``payload`` is a JSON array (a batch) rather than a single JSON object."""
    return payload.lstrip(b" \t\r\n")[:1] == b"["


def join_batch(encoded: Sequence[bytes]) -> bytes:
    """The payload for already-encoded events: a bare object for one, an array for more."""
    if len(encoded) == 1:
        return encoded[0]
    return b"[" + b",".join(encoded) + b"]"


def decode_events(raw: bytes) -> list[EventBase]:
    """Every event of a payload, single or batch, for consumers that trust the sender (tests,
    tools): unlike :func:`decode_record`, the first bad element raises :class:`ContractError`."""
    events: list[EventBase] = []
    for item in decode_record(raw):
        if isinstance(item, Rejected):
            raise item.error
        events.append(item)
    return events


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record, or one element of a batch record, that is not a usable event."""

    error: ContractError
    #: What to dead-letter: the whole record, or the element re-serialised.
    raw: bytes


def decode_record(
    raw: bytes, types: tuple[type[EventBase], ...] | None = None
) -> list[EventBase | Rejected]:
    """Every event of a Kafka record, a single one or a batch, in order; never raises.

    Each element is judged on its own, so one bad element costs only itself. ``types``:
    the event models that belong on the topic; any other is rejected as a topic mismatch.
    """
    if not is_batch(raw):
        try:
            return [_of_type(decode_event(raw), types)]
        except ContractError as exc:
            return [Rejected(exc, raw)]
    try:
        if len(raw) > MAX_BATCH_BYTES:
            raise ContractError(DeadLetterReason.PAYLOAD_TOO_LARGE, f"{len(raw)} bytes")
        items = parse_json(raw)
        if not isinstance(items, list) or not 0 < len(items) <= MAX_BATCH_EVENTS:
            raise ContractError(
                DeadLetterReason.SCHEMA_VIOLATION, f"a batch holds 1 to {MAX_BATCH_EVENTS} events"
            )
    except ContractError as exc:
        return [Rejected(exc, raw)]
    out: list[EventBase | Rejected] = []
    for i, item in enumerate(items):
        try:
            out.append(_of_type(validate_event(item), types))
        except ContractError as exc:
            error = ContractError(exc.reason, f"batch element {i}: {exc.detail}")
            out.append(Rejected(error, element_bytes(item)))
    return out


def _of_type(event: EventBase, types: tuple[type[EventBase], ...] | None) -> EventBase:
    if types is not None and not isinstance(event, types):
        raise ContractError(DeadLetterReason.TOPIC_MISMATCH, f"{event.type} does not belong here")
    return event


def element_bytes(doc: Any) -> bytes:
    """One parsed JSON value as bytes again, for a dead letter (never raises)."""
    try:
        return orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError):  # e.g. an integer beyond 64 bits
        return repr(doc).encode()
