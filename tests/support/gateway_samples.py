"""Valid sample events for the gateway tests, one per spine event type, plus their topics."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.device import AvailabilityData, AvailabilityV1, DeviceHeartbeatV1, HeartbeatData
from schemas.envelope import EventBase
from schemas.topics import DeviceKind, MqttTopic
from schemas.wifi import (
    WifiSessionData,
    WifiSessionInterimV1,
    WifiSessionStartV1,
    WifiSessionStopV1,
)

EVENT_TIME = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def wifi_data(n: int = 0) -> WifiSessionData:
    return WifiSessionData(client_id=f"{n:032x}", session_id=f"s-{n}", ap="ap-01")


def spine_events(site: str, device: str = "edge-1") -> list[EventBase]:
    """One valid event of every spine type for ``site``."""
    common = {"site": site, "device": device, "source": "test", "event_time": EVENT_TIME}
    return [
        WifiSessionStartV1(**common, data=wifi_data(1)),
        WifiSessionInterimV1(**common, data=wifi_data(1)),
        WifiSessionStopV1(**common, data=wifi_data(1)),
        DeviceHeartbeatV1(**common, data=HeartbeatData(uptime_s=12.5)),
        AvailabilityV1(**common, data=AvailabilityData(state="online")),
    ]


def session_start(site: str, n: int, device: str = "edge-1") -> WifiSessionStartV1:
    return WifiSessionStartV1(
        site=site, device=device, source="test", event_time=EVENT_TIME, data=wifi_data(n)
    )


def topic_for(event: EventBase, kind: DeviceKind = DeviceKind.WIFI) -> str:
    """The MQTT topic a well-behaved device publishes ``event`` on."""
    return str(
        MqttTopic.build(event.site, event.device_kind or kind, event.device, event.mqtt_stream)
    )
