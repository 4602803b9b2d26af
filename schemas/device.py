"""Device health: periodic heartbeats and online/offline availability.

Availability is also what an edge agent registers as its MQTT Last Will, so the broker
announces a device offline when its connection dies without a goodbye.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from schemas.envelope import EventBase, WireModel
from schemas.topics import KafkaTopic, MqttStream


class HeartbeatData(WireModel):
    """Health of an edge device; optional fields are filled by the agents that know them."""

    uptime_s: Annotated[float, Field(ge=0)]
    software: Annotated[str, StringConstraints(max_length=64)] = "tourpulse"
    queue_depth: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Events waiting in the store-and-forward outbox."
    )
    oldest_queued_s: Annotated[float, Field(ge=0)] | None = None
    dropped_total: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Events dropped because the outbox was full (never silent)."
    )
    rates: dict[str, float] = Field(default_factory=dict, description="Per-source rates, 1/s.")
    errors: dict[str, int] = Field(default_factory=dict, description="Error counts by reason.")


class DeviceHeartbeatV1(EventBase):
    """Sent every 30 s by every edge device."""

    kafka_topic: ClassVar[KafkaTopic] = KafkaTopic.DEVICE_HEARTBEAT
    mqtt_stream: ClassVar[MqttStream] = MqttStream.HEARTBEAT

    type: Literal["device.heartbeat"] = "device.heartbeat"
    version: Literal[1] = 1
    data: HeartbeatData


class AvailabilityData(WireModel):
    state: Literal["online", "offline"]
    reason: Annotated[str, StringConstraints(max_length=128)] | None = Field(
        default=None, description="E.g. 'last-will' when the broker sent it for a dead link."
    )


class AvailabilityV1(EventBase):
    """Online/offline; retained on MQTT and used as the Last Will."""

    kafka_topic: ClassVar[KafkaTopic] = KafkaTopic.DEVICE_AVAILABILITY
    mqtt_stream: ClassVar[MqttStream] = MqttStream.AVAILABILITY

    type: Literal["device.availability"] = "device.availability"
    version: Literal[1] = 1
    data: AvailabilityData
