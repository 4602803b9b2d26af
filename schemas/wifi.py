"""Wi-Fi session events: start, interim update and stop of one client's association.

These map one-to-one onto RADIUS accounting Start / Interim-Update / Stop, and onto what
any other source (hostapd, controller webhooks, the simulator) can tell about a session.
The client is always a pseudonymous id made at the edge with a rotating keyed hash.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from schemas.envelope import DeviceId, EventBase, PseudonymousId, WireModel
from schemas.topics import DeviceKind, KafkaTopic, MqttStream

NonNegative = Annotated[int, Field(ge=0)]


class WifiSessionData(WireModel):
    """What is known about a session at the time of the event."""

    client_id: PseudonymousId = Field(description="Keyed HMAC of the client MAC (rotates daily).")
    session_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="Identifier of this association, unique per site (e.g. Acct-Session-Id)."
    )
    ap: DeviceId = Field(description="Access point the client is associated with.")
    ssid: Annotated[str, StringConstraints(max_length=32)] | None = None
    randomized_mac: bool = Field(
        default=False, description="The MAC was locally administered (randomised by the phone)."
    )
    signal_dbm: Annotated[int, Field(ge=-120, le=0)] | None = None
    rx_bytes: NonNegative | None = None
    tx_bytes: NonNegative | None = None
    session_seconds: NonNegative | None = None
    terminate_cause: Annotated[str, StringConstraints(max_length=64)] | None = None
    start_cause: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None,
        description="Why a session starts without a new association: 'Key-Rotation' = the "
        "same association continued under the new day's pseudonym (the old one was stopped).",
    )
    session_start: AwareDatetime | None = Field(
        default=None,
        description="When this association started, as the source knows it (whole seconds). "
        "With site and session_id it is the session's identity: a NAS that reuses an "
        "Acct-Session-Id after a stop starts another session. None: unknown.",
    )


class _WifiSessionEvent(EventBase):
    kafka_topic: ClassVar[KafkaTopic] = KafkaTopic.WIFI_SESSION
    mqtt_stream: ClassVar[MqttStream] = MqttStream.SESSION
    device_kind: ClassVar[DeviceKind | None] = DeviceKind.WIFI

    data: WifiSessionData


class WifiSessionStartV1(_WifiSessionEvent):
    """A client associated (RADIUS Acct-Status-Type Start)."""

    type: Literal["wifi.session.start"] = "wifi.session.start"
    version: Literal[1] = 1


class WifiSessionInterimV1(_WifiSessionEvent):
    """A client is still associated (RADIUS Interim-Update): refreshes last-seen."""

    type: Literal["wifi.session.interim"] = "wifi.session.interim"
    version: Literal[1] = 1


class WifiSessionStopV1(_WifiSessionEvent):
    """A client left (RADIUS Stop)."""

    type: Literal["wifi.session.stop"] = "wifi.session.stop"
    version: Literal[1] = 1
