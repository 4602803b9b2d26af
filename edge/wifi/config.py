"""The Wi-Fi edge agent's own config file (YAML), e.g. ``/etc/tourpulse/edge-wifi.yaml``.

Site/AP/NAS facts come from the shared device configs; this file only says who the agent is,
which sources to run and where its state lives. Unknown keys are errors (typos fail loudly).
"""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from device_configs.wifi import SecretRef
from edge.link import MqttLinkConfig
from schemas.envelope import DeviceId, SiteId

Port = Annotated[int, Field(ge=0, lt=65536)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RadiusSection(_Section):
    enabled: bool = True
    host: str = "0.0.0.0"
    port: Port = 1813
    max_clock_skew_s: Annotated[float, Field(ge=0, le=86400)] = Field(
        default=300.0,
        description="Event-Timestamp further than this from the agent's clock is ignored "
        "(arrival time is used instead).",
    )
    receive_buffer_bytes: Annotated[int, Field(ge=65536, le=256 * 1024 * 1024)] = Field(
        default=4 * 1024 * 1024,
        description="UDP receive buffer (beyond net.core.rmem_max only when privileged).",
    )


class SyslogSection(_Section):
    enabled: bool = False
    host: str = "0.0.0.0"
    port: Port = Field(default=514, description="514 needs root (or CAP_NET_BIND_SERVICE).")


class MerakiSection(_Section):
    enabled: bool = False
    host: str = "0.0.0.0"
    port: Port = 8088
    path: str = "/meraki/scanning"
    validator: Annotated[str, Field(min_length=1, max_length=128)] = Field(
        default="change-me", description="Validator string shown in the Meraki dashboard."
    )
    secret: SecretRef | None = Field(default=None, description="Shared secret reference.")
    sessions: Literal["associated", "all", "none"] = Field(
        default="associated",
        description="Which observed clients also get session events (and so count in "
        "occupancy): associated ones (like RADIUS/hostapd), all incl. probing, or none.",
    )
    session_timeout_s: Annotated[int, Field(ge=60, le=86400)] = Field(
        default=300, description="A client unseen this long is stopped (Meraki posts ~1/min)."
    )


class WifiEdgeConfig(_Section):
    device: DeviceId = Field(description="This agent's device id (its MQTT user).")
    site: SiteId = Field(description="Home site: heartbeats and availability go here.")
    sites: list[SiteId] = Field(default_factory=list, description="Sites served (default: site).")
    deployment: SiteId = Field(default="hcmc", description="Pseudonymisation key scope (city).")
    state_dir: Path = Path("/var/lib/tourpulse-edge")
    device_configs: Path | None = None
    secrets_file: Path | None = None
    key_rotate_at: time = time(4, 0)
    timezone: str = "Asia/Ho_Chi_Minh"
    metrics_host: str = "127.0.0.1"
    metrics_port: Port = 9110
    mqtt: MqttLinkConfig = Field(default_factory=MqttLinkConfig)
    radius: RadiusSection = Field(default_factory=RadiusSection)
    syslog: SyslogSection = Field(default_factory=SyslogSection)
    meraki: MerakiSection = Field(default_factory=MerakiSection)

    def served_sites(self) -> set[str]:
        return set(self.sites) | {self.site}

    def link_config(self) -> MqttLinkConfig:
        """The uplink config, with the outbox under ``state_dir`` unless set explicitly."""
        if "outbox_path" in self.mqtt.model_fields_set:
            return self.mqtt
        return self.mqtt.model_copy(update={"outbox_path": self.state_dir / "outbox.sqlite"})


def load_config(path: Path) -> WifiEdgeConfig:
    """Read and validate; ValueError with one ``field: message`` line per problem."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        return WifiEdgeConfig.model_validate(raw)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except ValidationError as exc:
        lines = [
            f"{path}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)
        ]
        raise ValueError("\n".join(lines)) from None
