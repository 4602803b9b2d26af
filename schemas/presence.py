"""Wi-Fi presence: a client seen near an AP without (necessarily) being associated.

From controller location feeds such as the Cisco Meraki Scanning API: probing phones count
as footfall even when they never join the network. The client is a pseudonym made at the edge.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from schemas.envelope import DeviceId, EventBase, PseudonymousId, WireModel
from schemas.topics import DeviceKind, KafkaTopic, MqttStream


class WifiPresenceData(WireModel):
    client_id: PseudonymousId = Field(description="Keyed HMAC of the client MAC (rotates daily).")
    ap: DeviceId = Field(description="Nearest access point.")
    randomized_mac: bool = False
    rssi_dbm: Annotated[int, Field(ge=-120, le=0)] | None = None
    ssid: Annotated[str, StringConstraints(max_length=32)] | None = Field(
        default=None, description="Set when the client is associated, else None (probing)."
    )
    vendor_source: Annotated[str, StringConstraints(max_length=32)] = Field(
        default="meraki", description="Which controller feed saw it."
    )


class WifiPresenceV1(EventBase):
    """One observation of a client by a controller's location feed."""

    kafka_topic: ClassVar[KafkaTopic] = KafkaTopic.WIFI_PRESENCE
    mqtt_stream: ClassVar[MqttStream] = MqttStream.PRESENCE
    device_kind: ClassVar[DeviceKind | None] = DeviceKind.WIFI

    type: Literal["wifi.presence"] = "wifi.presence"
    version: Literal[1] = 1
    data: WifiPresenceData
