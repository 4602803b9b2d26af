"""TourPulse event contract: the only place a message shape is defined.

Edge agents, stream processors and the API all import from here, so a producer and a
consumer can never disagree on a field. Wire models ignore unknown fields (adding a field
is not a breaking change); a breaking change is a new model with a higher ``version``.
"""

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
