"""Messages produced inside the platform (not by devices): dead letters, live occupancy and
alert views. Each crosses a process boundary (Kafka, SSE, HTTP), so each is one typed model
with one name, built in one place."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from schemas.envelope import SiteId, WireModel

#: Raw payloads are cut to this size in dead letters so one bad 1 MB message cannot
#: bloat the DLQ; the original size is kept alongside.
DEAD_LETTER_PAYLOAD_CAP = 4096


class DeadLetterV1(WireModel):
    """A message the gateway could not accept, with why and (a capped copy of) what it was."""

    version: int = 1
    reason: Annotated[str, StringConstraints(max_length=64)]
    detail: Annotated[str, StringConstraints(max_length=2000)]
    mqtt_topic: Annotated[str, StringConstraints(max_length=512)]
    received_at: AwareDatetime
    payload_size: Annotated[int, Field(ge=0)]
    payload_b64: str = Field(description="Base64 of the first bytes of the raw payload.")
    payload_truncated: bool
    batch_index: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="Position of the refused element when the payload was a batch "
        "(schemas.batch); the payload is then that element alone, re-serialised.",
    )


class OccupancyUpdateV1(WireModel):
    """Live occupancy of one site: computed by the worker's sink, throttled, published to
    Kafka and fanned out by the API (the same model all the way; ``emitted_at`` is stamped
    again when it is actually sent)."""

    version: int = 1
    site: SiteId
    connected: Annotated[int, Field(ge=0)] = Field(description="Clients connected now.")
    as_of: datetime = Field(description="Event-time watermark of the site when computed.")
    emitted_at: AwareDatetime


class FusedOccupancyV1(WireModel):
    """People at a site now, fusing Wi-Fi clients and camera counts, with a confidence band.

    ``people`` is the estimate; ``low``/``high`` bound it. ``degraded`` is set when a sensor
    the site normally has is stale or offline (listed in ``stale_sensors``), so operators
    know the number is weaker than usual.
    """

    version: int = 1
    site: SiteId
    people: Annotated[float, Field(ge=0)]
    low: Annotated[float, Field(ge=0)]
    high: Annotated[float, Field(ge=0)]
    wifi_clients: Annotated[int, Field(ge=0)] | None = None
    camera_people: Annotated[int, Field(ge=0)] | None = None
    people_per_client: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="Calibrated Wi-Fi-to-people ratio used for this site."
    )
    capacity: Annotated[int, Field(gt=0)] | None = None
    degraded: bool = False
    stale_sensors: list[str] = Field(default_factory=list)
    source: Literal["wifi_calibrated", "wifi_prior", "camera"] | None = Field(
        default=None,
        description="What the number rests on: Wi-Fi clients x a camera-calibrated ratio, "
        "x the site's configured ratio (Wi-Fi-only sites), or cameras alone.",
    )
    confidence: Literal["high", "medium", "low"] | None = Field(
        default=None, description="Lowered one step per entry of ``flags``."
    )
    flags: list[str] = Field(
        default_factory=list,
        description="Sensor health: camera_offline:<id>, detector_fallback:<id>, "
        "wifi_silent, camera_disagrees.",
    )
    as_of: datetime
    emitted_at: AwareDatetime


AlertSeverity = Literal["WARNING", "MINOR", "MAJOR", "CRITICAL"]
AlertStateName = Literal["ACTIVE_UNACK", "ACTIVE_ACK", "CLEARED_UNACK", "CLEARED_ACK"]


class AlertViewV1(WireModel):
    """The public view of one alert (the API's responses, live feeds, notifications).

    Built only by ``stream.alerts.store.StoredAlert.view``."""

    id: Annotated[int, Field(ge=1)]
    incident_id: Annotated[int, Field(ge=1)]
    originator: str = Field(description="What raised it: a device or site id.")
    site: str  # as stored: a view of a saved alert never fails to build
    type: str = Field(description="Rule that raised it, e.g. device_offline, overcrowding.")
    severity: AlertSeverity
    state: AlertStateName
    created_at: AwareDatetime
    last_triggered_at: AwareDatetime
    updated_at: AwareDatetime
    trigger_count: Annotated[int, Field(ge=1)]
    assignee: str | None = None
    escalations: Annotated[int, Field(ge=0)] = 0
    details: dict[str, Any] = Field(
        default_factory=dict, description="Rule-specific facts (observed values, thresholds)."
    )


class AlertChangedV1(WireModel):
    """An alert was raised, retriggered, escalated, acknowledged, assigned, commented or
    cleared; ``alert`` is its full public view after the change (for live feeds)."""

    version: int = 1
    action: Annotated[str, StringConstraints(max_length=32)]
    actor: Annotated[str, StringConstraints(max_length=64)]
    at: AwareDatetime
    note: str | None = None
    alert: AlertViewV1
