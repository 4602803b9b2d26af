"""Config models for sites and devices.

Unlike wire messages these forbid unknown fields: a typo in a config file must fail
loudly at load time instead of silently disabling a setting.
"""

from __future__ import annotations

from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from device_configs.alerting import AlertingConfig
from device_configs.base import ConfigModel
from device_configs.camera import CameraSetup
from device_configs.wifi import MacAddress, NasIdentifier, RadiusNas, SecretRef
from schemas.envelope import DeviceId, SiteId

Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class SiteKind(StrEnum):
    URBAN = "urban"
    RURAL = "rural"
    CRAFT_VILLAGE = "craft_village"
    NATURE = "nature"
    BEACH = "beach"


class VenueKind(StrEnum):
    """What visitors do at a site, finer than :class:`SiteKind`: drives opening hours, the
    daily visitor curve and how long people stay (simulator profiles, occupancy baselines)."""

    MARKET = "market"
    MUSEUM = "museum"
    LANDMARK = "landmark"
    WALKING_STREET = "walking_street"
    NIGHTLIFE = "nightlife"
    PARK = "park"
    THEME_PARK = "theme_park"
    HERITAGE = "heritage"
    CRAFT_VILLAGE = "craft_village"
    NATURE_RESERVE = "nature_reserve"
    BEACH = "beach"


class Site(ConfigModel):
    id: SiteId
    name_vi: Text
    name_en: Text
    kind: SiteKind
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    capacity_persons: Annotated[int, Field(gt=0)] = Field(
        description="Planning capacity (illustrative for the HCMC demo set)."
    )
    timezone: str = "Asia/Ho_Chi_Minh"
    wifi_agent: DeviceId | None = Field(
        default=None, description="Wi-Fi edge agent publishing this site's sessions (MQTT ACL)."
    )
    radius_nas: list[RadiusNas] = Field(
        default_factory=list, description="Controllers sending RADIUS accounting for the site."
    )
    venue: VenueKind | None = Field(
        default=None, description="Kind of visit; None means a default derived from ``kind``."
    )
    people_per_client: Annotated[float, Field(gt=0, le=50)] = Field(
        default=2.5,
        description="People per connected Wi-Fi client before camera calibration "
        "(1 / Wi-Fi adoption among visitors).",
    )


class AccessPoint(ConfigModel):
    id: DeviceId
    site: SiteId
    name: Text
    ssids: list[Annotated[str, StringConstraints(min_length=1, max_length=32)]] = Field(
        default_factory=lambda: ["HCMC Free WiFi"]
    )
    # Wi-Fi edge: how RADIUS / hostapd / Meraki reports name this AP (see device_configs.wifi).
    bssids: list[MacAddress] = Field(
        default_factory=list, description="Radio MACs (Called-Station-Id, Meraki apMac)."
    )
    nas_identifier: NasIdentifier | None = Field(
        default=None, description="NAS-Identifier when the AP sends RADIUS itself."
    )
    nas_ip: IPv4Address | IPv6Address | None = None
    radius_secret: SecretRef | None = Field(
        default=None, description="Shared secret reference when the AP is its own NAS."
    )


class Camera(ConfigModel):
    id: DeviceId
    site: SiteId
    name: Text
    ptz: bool = True
    audio: bool = True
    setup: CameraSetup | None = Field(
        default=None, description="ONVIF address, presets with counting geometry, tours."
    )
    coverage: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.25,
        description="Share of the site's visitors inside this camera's counting zones "
        "(used to calibrate Wi-Fi to people).",
    )


class DeviceConfigs(ConfigModel):
    """Everything in one config directory, cross-checked (ids unique, sites exist)."""

    sites: list[Site]
    access_points: list[AccessPoint] = Field(default_factory=list)
    cameras: list[Camera] = Field(default_factory=list)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)

    @model_validator(mode="after")
    def _check_references(self) -> DeviceConfigs:
        site_ids = [s.id for s in self.sites]
        _require_unique("site", site_ids)
        devices: list[AccessPoint | Camera] = [*self.access_points, *self.cameras]
        _require_unique("device", [d.id for d in devices])
        known = set(site_ids)
        for device in devices:
            if device.site not in known:
                raise ValueError(f"device {device.id!r} refers to unknown site {device.site!r}")
        return self

    def site(self, site_id: str) -> Site:
        for s in self.sites:
            if s.id == site_id:
                return s
        raise KeyError(site_id)

    def access_points_at(self, site_id: str) -> list[AccessPoint]:
        return [ap for ap in self.access_points if ap.site == site_id]


def _require_unique(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"duplicate {what} id {i!r}")
        seen.add(i)
