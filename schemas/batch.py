"""Batches: one MQTT payload carrying several events of one device.

Per-message costs (an MQTT packet, a PUBACK, a paho callback on both ends, broker routing)
dwarf the cost of one small event, so a device sending many events packs them into a JSON
array of envelopes on its usual topic. A single event stays a bare JSON object: a device
with little to say sends exactly what it sent before batches existed.

Every element must belong on the topic it travels on (same site, device, device kind and
stream). The gateway validates each element on its own: valid ones are forwarded in order,
invalid ones are dead-lettered one by one with their index; only a payload that is not a
JSON array at all, or is too big, becomes one dead letter for the whole message.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    tools): unlike the gateway, the first bad element raises :class:`ContractError`."""
    if not is_batch(raw):
        return [decode_event(raw)]
    if len(raw) > MAX_BATCH_BYTES:
        raise ContractError(DeadLetterReason.PAYLOAD_TOO_LARGE, f"{len(raw)} bytes")
    return [validate_event(item) for item in parse_json(raw)]
