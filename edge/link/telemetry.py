"""The link's own messages: availability (Last Will, online, shutdown) and heartbeats.

They are telemetry about the link, not events from the site: published directly (availability
QoS 1 retained, heartbeats QoS 0), never through the outbox, so a backlog of events can never
delay the broker's view of whether the agent is alive.
"""

from __future__ import annotations

from typing import Literal

from edge.link.config import LinkIdentity
from schemas.device import AvailabilityData, AvailabilityV1, DeviceHeartbeatV1, HeartbeatData
from schemas.envelope import utc_now
from schemas.topics import MqttStream, MqttTopic


def topic(identity: LinkIdentity, stream: MqttStream) -> str:
    """The agent's own topic for ``stream`` (availability or heartbeat)."""
    return str(MqttTopic.build(identity.site, identity.kind, identity.device, stream))


def availability(
    identity: LinkIdentity,
    software: str,
    state: Literal["online", "offline"],
    reason: str | None,
) -> AvailabilityV1:
    return AvailabilityV1(
        site=identity.site,
        device=identity.device,
        source=software,
        event_time=utc_now(),
        data=AvailabilityData(state=state, reason=reason),
    )


def heartbeat(identity: LinkIdentity, software: str, data: HeartbeatData) -> DeviceHeartbeatV1:
    return DeviceHeartbeatV1(
        site=identity.site,
        device=identity.device,
        source=software,
        event_time=utc_now(),
        data=data,
    )
