"""TourPulse event contract: the only place a message shape is defined.

Edge agents, stream processors and the API all import from here, so a producer and a
consumer can never disagree on a field. Wire models ignore unknown fields (adding a field
is not a breaking change); a breaking change is a new model with a higher ``version``.

Names are imported on first use (PEP 562): importing any ``schemas.X`` module runs this
file, and building every event model up front cost a small edge agent ~7 MB it never used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schemas.codec import ContractError, DeadLetterReason, decode_event, encode_event
    from schemas.device import AvailabilityV1, DeviceHeartbeatV1
    from schemas.envelope import DeviceId, EventBase, SiteId, new_event_id
    from schemas.registry import EVENT_MODELS, AnyEvent, model_for
    from schemas.stream_out import DeadLetterV1, OccupancyUpdateV1
    from schemas.topics import DeviceKind, KafkaTopic, MqttStream, MqttTopic, mqtt_subscription
    from schemas.wifi import (
        WifiSessionData,
        WifiSessionInterimV1,
        WifiSessionStartV1,
        WifiSessionStopV1,
    )

__all__ = [
    "EVENT_MODELS",
    "AnyEvent",
    "AvailabilityV1",
    "ContractError",
    "DeadLetterReason",
    "DeadLetterV1",
    "DeviceHeartbeatV1",
    "DeviceId",
    "DeviceKind",
    "EventBase",
    "KafkaTopic",
    "MqttStream",
    "MqttTopic",
    "OccupancyUpdateV1",
    "SiteId",
    "WifiSessionData",
    "WifiSessionInterimV1",
    "WifiSessionStartV1",
    "WifiSessionStopV1",
    "decode_event",
    "encode_event",
    "model_for",
    "mqtt_subscription",
    "new_event_id",
]

#: Public name -> module defining it.
_SOURCES = {
    "ContractError": "codec", "DeadLetterReason": "codec", "decode_event": "codec",
    "encode_event": "codec", "AvailabilityV1": "device", "DeviceHeartbeatV1": "device",
    "DeviceId": "envelope", "EventBase": "envelope", "SiteId": "envelope",
    "new_event_id": "envelope", "EVENT_MODELS": "registry", "AnyEvent": "registry",
    "model_for": "registry", "DeadLetterV1": "stream_out", "OccupancyUpdateV1": "stream_out",
    "DeviceKind": "topics", "KafkaTopic": "topics", "MqttStream": "topics",
    "MqttTopic": "topics", "mqtt_subscription": "topics", "WifiSessionData": "wifi",
    "WifiSessionInterimV1": "wifi", "WifiSessionStartV1": "wifi", "WifiSessionStopV1": "wifi",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(f"module 'schemas' has no attribute {name!r}")
    return getattr(importlib.import_module(f"schemas.{module}"), name)
