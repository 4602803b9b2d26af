"""Alert rules and notification targets (``alerting.yaml``).

Defaults apply to every site; ``sites`` overrides them per site, so a walking street can
tolerate a higher density than a museum. Thresholds are ratios of the site's capacity so
one rule set fits sites of every size.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, HttpUrl, StringConstraints, model_validator

from device_configs.base import ConfigModel
from schemas.envelope import SiteId

SeverityName = Literal["CRITICAL", "MAJOR", "MINOR", "WARNING"]
Ratio = Annotated[float, Field(gt=0, le=10)]
Seconds = Annotated[float, Field(ge=0, le=86_400)]


def _severities(*names: SeverityName) -> list[SeverityName]:
    return list(names)


class OccupancyHighRule(ConfigModel):
    """Overcrowding with hysteresis: raise above ``raise_ratio`` held for ``min_duration_s``,
    clear only below ``clear_ratio`` so a count hovering at the line does not flap."""

    enabled: bool = True
    raise_ratio: Ratio = 0.9
    clear_ratio: Ratio = 0.8
    min_duration_s: Seconds = 60
    severity: SeverityName = "MAJOR"

    @model_validator(mode="after")
    def _hysteresis(self) -> OccupancyHighRule:
        if self.clear_ratio >= self.raise_ratio:
            raise ValueError("clear_ratio must be below raise_ratio (hysteresis)")
        return self


class RapidRiseRule(ConfigModel):
    """Occupancy rising by ``rise_ratio`` of capacity within ``window_s``."""

    enabled: bool = True
    rise_ratio: Ratio = 0.25
    window_s: Annotated[float, Field(gt=0, le=3600)] = 300
    severity: SeverityName = "MINOR"


class DeviceOfflineRule(ConfigModel):
    """No heartbeat for ``timeout_s`` or an offline availability (MQTT Last Will)."""

    enabled: bool = True
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 90
    severity: SeverityName = "MAJOR"


class CameraRule(ConfigModel):
    """Camera tamper (ONVIF) and stream lost (no metadata for ``stream_timeout_s``)."""

    enabled: bool = True
    stream_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 30
    severity: SeverityName = "MAJOR"


class LoudNoiseRule(ConfigModel):
    enabled: bool = True
    min_rise_db: Annotated[float, Field(ge=0, le=120)] = 20
    clear_after_s: Seconds = 60
    severity: SeverityName = "MINOR"


class AnomalyRule(ConfigModel):
    """Occupancy far from the same hour-of-week baseline (z-score over past weeks)."""

    enabled: bool = True
    z_threshold: Annotated[float, Field(gt=0, le=20)] = 3.0
    min_weeks: Annotated[int, Field(ge=1, le=52)] = 3
    severity: SeverityName = "WARNING"


class SiteAlertRules(ConfigModel):
    occupancy_high: OccupancyHighRule = Field(default_factory=OccupancyHighRule)
    rapid_rise: RapidRiseRule = Field(default_factory=RapidRiseRule)
    device_offline: DeviceOfflineRule = Field(default_factory=DeviceOfflineRule)
    camera: CameraRule = Field(default_factory=CameraRule)
    loud_noise: LoudNoiseRule = Field(default_factory=LoudNoiseRule)
    anomaly: AnomalyRule = Field(default_factory=AnomalyRule)


class WebhookTarget(ConfigModel):
    kind: Literal["webhook"]
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    url: HttpUrl
    severities: list[SeverityName] = Field(default_factory=lambda: _severities("CRITICAL", "MAJOR"))
    secret_env: str | None = Field(
        default=None, description="Env var holding an HMAC key to sign the body (optional)."
    )


class EmailTarget(ConfigModel):
    kind: Literal["email"]
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    smtp_host: str = "127.0.0.1"
    smtp_port: Annotated[int, Field(gt=0, lt=65536)] = 25
    sender: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$")]
    recipients: list[Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$")]]
    severities: list[SeverityName] = Field(default_factory=lambda: _severities("CRITICAL"))
    starttls: bool = False
    tls_ca_file: str | None = Field(
        default=None,
        description="CA bundle that signs the SMTP server's certificate (default: the "
        "system's). The certificate and host name are always verified.",
    )
    username_env: str | None = None
    password_env: str | None = None


class AlertingConfig(ConfigModel):
    defaults: SiteAlertRules = Field(default_factory=SiteAlertRules)
    sites: dict[SiteId, SiteAlertRules] = Field(default_factory=dict)
    escalation_after_s: Annotated[float, Field(gt=0)] = 600
    incident_window_s: Annotated[float, Field(gt=0)] = 900
    notifications: list[Annotated[WebhookTarget | EmailTarget, Field(discriminator="kind")]] = (
        Field(default_factory=list)
    )

    def rules_for(self, site: str) -> SiteAlertRules:
        return self.sites.get(site, self.defaults)
