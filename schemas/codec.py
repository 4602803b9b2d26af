"""Decode raw bytes into contract events, classifying every failure.

The gateway turns each :class:`ContractError` into a dead letter with its ``reason``; the
reasons are a closed set so they can be metric labels without exploding cardinality.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from functools import cache
from typing import Any, cast

import orjson
from pydantic import ValidationError

from schemas.envelope import EventBase

#: Largest payload the platform accepts from a device; far above any real event.
MAX_EVENT_BYTES = 64 * 1024


class DeadLetterReason(StrEnum):
    PAYLOAD_TOO_LARGE = "payload_too_large"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    SCHEMA_VIOLATION = "schema_violation"
    TOPIC_MISMATCH = "topic_mismatch"
    BAD_TOPIC = "bad_topic"
    UNKNOWN_SITE = "unknown_site"


class ContractError(ValueError):
    """A message that does not satisfy the contract, with a machine-readable reason."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def decode_event(raw: bytes, max_bytes: int = MAX_EVENT_BYTES) -> EventBase:
    """Parse and validate one event; raise :class:`ContractError` saying why it is not one."""
    if len(raw) > max_bytes:
        raise ContractError(
            DeadLetterReason.PAYLOAD_TOO_LARGE, f"{len(raw)} bytes > limit {max_bytes}"
        )
    return validate_event(parse_json(raw))


def parse_json(raw: bytes) -> Any:
    """Parse JSON bytes (orjson: ~4x faster than ``json``, it matters at 5,000 events/s).

    Raises :class:`ContractError` with ``invalid_utf8`` or ``invalid_json``.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as utf8:
            raise ContractError(DeadLetterReason.INVALID_UTF8, str(utf8)) from None
        raise ContractError(DeadLetterReason.INVALID_JSON, str(exc)) from None


def validate_event(obj: Any) -> EventBase:
    """Validate one parsed JSON value as an event; :class:`ContractError` says why not.

    The model is found by its ``(type, version)`` and validated directly: the registry's
    discriminated union would dispatch on the tag a second time, and building the tag
    string per event cost a quarter of the whole (5.4 -> 3.9 µs per event in one run,
    paid by the gateway and again by every worker).
    """
    if not isinstance(obj, dict):
        raise ContractError(DeadLetterReason.NOT_AN_OBJECT, f"got {type(obj).__name__}")
    kind, version = obj.get("type"), obj.get("version")
    # Exact types: a bool is no version, and a list as the type must not reach the lookup
    # (unhashable: it raised TypeError, which nothing above expects).
    model = _model_for()(kind, version) if type(kind) is str and type(version) is int else None
    if model is None:
        from schemas.registry import event_tag

        raise ContractError(
            DeadLetterReason.UNKNOWN_EVENT_TYPE, f"no model registered for {event_tag(obj)!r}"
        )
    try:
        return cast(EventBase, model.__pydantic_validator__.validate_python(obj))
    except ValidationError as exc:
        raise ContractError(DeadLetterReason.SCHEMA_VIOLATION, _summarise(exc)) from None


@cache
def _model_for() -> Callable[[Any, int], type[EventBase] | None]:
    """The registry's lookup, imported on first decode rather than with this module:
    producers such as a site's Wi-Fi agent only encode, and the models cost them ~7 MB."""
    from schemas.registry import model_for

    return model_for


def encode_event(event: EventBase) -> bytes:
    """Serialise an event for MQTT or Kafka (compact JSON, UTF-8)."""
    return event.__pydantic_serializer__.to_json(event)  # bytes directly: no str round trip


def _summarise(exc: ValidationError, limit: int = 5) -> str:
    """First few validation errors as ``field.path: message`` for humans and the DLQ."""
    parts = []
    for err in exc.errors(include_url=False)[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
