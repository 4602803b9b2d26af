"""The link's own messages: availability (Last Will, online, shutdown) and heartbeats.

They are telemetry about the link, not events from the site: published directly (availability
QoS 1 retained, heartbeats QoS 0), never through the outbox, so a backlog of events can never
delay the broker's view of whether the agent is alive.
"""

from __future__ import annotations

from typing import Literal

from edge.link.config import LinkIdentity
from edge.link.outbox import Outbox
from schemas.codec import encode_event
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


def availability_message(
    identity: LinkIdentity, software: str, offline_reason: str | None
) -> tuple[str, bytes]:
    """Topic and payload of the agent's availability: online when ``offline_reason`` is
    None (sent QoS 1, retained, like the Last Will)."""
    state: Literal["online", "offline"] = "online" if offline_reason is None else "offline"
    event = availability(identity, software, state, offline_reason)
    return topic(identity, MqttStream.AVAILABILITY), encode_event(event)


def heartbeat(
    identity: LinkIdentity,
    software: str,
    uptime_s: float,
    outbox: Outbox,
    oldest_queued_s: float | None,
    rates: dict[str, float],
    errors: dict[str, int],
) -> DeviceHeartbeatV1:
    """The link's heartbeat: its outbox's state plus the agent's source statistics."""
    data = HeartbeatData(
        uptime_s=uptime_s,
        software=software,
        queue_depth=outbox.depth(),
        oldest_queued_s=oldest_queued_s,
        dropped_total=outbox.dropped,
        rates=rates,
        errors=errors,
    )
    return DeviceHeartbeatV1(
        site=identity.site,
        device=identity.device,
        source=software,
        event_time=utc_now(),
        data=data,
    )
