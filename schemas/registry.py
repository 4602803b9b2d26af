"""Registry of every device event model, keyed by (type, version).

The discriminated union below is what the gateway validates against: a message whose
(type, version) is not registered is an unknown event type, not a schema violation.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag

from schemas.camera import (
    CameraAudioLevelV1,
    CameraCommandResultV1,
    CameraCommandV1,
    CameraHealthV1,
    CameraLoudNoiseV1,
    CameraMetadataV1,
    CameraOnvifEventV1,
)
from schemas.device import AvailabilityV1, DeviceHeartbeatV1
from schemas.envelope import EventBase
from schemas.portal import (
    PortalAccessGrantedV1,
    PortalImpressionV1,
    PortalPromoClickV1,
    PortalTermsAcceptedV1,
)
from schemas.presence import WifiPresenceV1
from schemas.wifi import WifiSessionInterimV1, WifiSessionStartV1, WifiSessionStopV1

EVENT_MODELS: tuple[type[EventBase], ...] = (
    WifiSessionStartV1,
    WifiSessionInterimV1,
    WifiSessionStopV1,
    WifiPresenceV1,
    DeviceHeartbeatV1,
    AvailabilityV1,
    CameraMetadataV1,
    CameraAudioLevelV1,
    CameraLoudNoiseV1,
    CameraOnvifEventV1,
    CameraCommandV1,
    CameraCommandResultV1,
    CameraHealthV1,
    PortalImpressionV1,
    PortalTermsAcceptedV1,
    PortalAccessGrantedV1,
    PortalPromoClickV1,
)


def _key(model: type[EventBase]) -> tuple[str, int]:
    fields = model.model_fields
    return fields["type"].default, fields["version"].default


def _tag(model: type[EventBase]) -> str:
    return "{}@{}".format(*_key(model))


#: Keyed by a ``(type, version)`` tuple: :func:`schemas.codec.validate_event` looks every
#: event up here, and building a tag string per event cost ~1.5 µs of ~5.
_BY_KEY: dict[tuple[str, int], type[EventBase]] = {_key(m): m for m in EVENT_MODELS}


def event_tag(value: Any) -> str | None:
    """Discriminator: ``"<type>@<version>"`` from a dict or a model; None if absent."""
    if isinstance(value, dict):
        return f"{value.get('type')}@{value.get('version')}"
    if isinstance(value, EventBase):
        return f"{value.type}@{value.version}"
    return None


def model_for(event_type: str, version: int) -> type[EventBase] | None:
    return _BY_KEY.get((event_type, version))


# Built from EVENT_MODELS so registering a new event is one line in that tuple.
AnyEvent: Any = Annotated[
    Union[tuple(Annotated[m, Tag(_tag(m))] for m in EVENT_MODELS)],  # noqa: UP007
    Discriminator(event_tag),
]
