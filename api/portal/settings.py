"""Portal settings (``TP_PORTAL_*``): secrets, controller credentials, allow-lists.

Kept apart from the platform settings because only the portal needs them and most are
secrets. Without ``TP_PORTAL_SECRET`` a random one is made per process: fine for a single
dev process, but sealed contexts then die with a restart, so production must set it.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.mqtt_client import MqttClientSettings

#: Versions of the texts a visitor agrees to; stored with every consent record.
TERMS_VERSION = "2025-07-01"
NOTICE_VERSION = "2025-07-01"


class PortalSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TP_PORTAL_", extra="ignore")

    secret: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_hex(32)),
        description="Seals the visit context and signs CSRF tokens.",
    )
    admin_tokens: dict[str, SecretStr] = Field(
        default_factory=dict, description='Admin API bearer tokens by actor: {"ops": "..."}.'
    )
    key_dir: Path | None = Field(
        default=None, description="Pseudonymisation key dir (default <data_dir>/privacy)."
    )
    key_scope: str = "hcmc"
    device_id: str = Field(
        default="portal-1",
        description="Device id in funnel events (default: the portal's MQTT user, if set).",
    )
    mqtt_username: str | None = Field(
        default=None,
        description="The portal's own MQTT identity: its ACL allows writing only "
        "tp/v1/+/portal/<this user>/funnel. Unset: the process's TP_MQTT_* identity (dev).",
    )
    mqtt_password: SecretStr | None = None
    session_minutes: int = Field(default=120, ge=1, le=7 * 24 * 60)
    context_ttl_s: int = Field(default=1800, description="How long a splash visit may last.")
    grant_hosts: list[str] = Field(
        default_factory=lambda: ["*.network-auth.com"],
        description="Hosts a Meraki base_grant_url may point to.",
    )
    continue_hosts: list[str] = Field(
        default_factory=list, description="Allowed continue-URL hosts; empty = any host."
    )
    opennds_faskey: SecretStr | None = None
    opennds_gateways: list[str] = Field(
        default_factory=lambda: ["*"], description="Allowed openNDS gateway addresses."
    )
    unifi_url: str | None = Field(default=None, description="e.g. https://unifi.local:8443")
    unifi_username: str = "portal"
    unifi_password: SecretStr = SecretStr("")
    unifi_site: str = "default"
    unifi_verify_tls: bool = True
    public_url: str | None = Field(
        default=None, description="Base URL phones reach the portal at (RFC 8908 links)."
    )
    privacy_contact: str = Field(
        default="privacy@tourpulse.invalid", description="Where data subjects send requests."
    )
    unifi_site_map: dict[str, str] = Field(
        default_factory=dict, description="UniFi site name → TourPulse site id."
    )
    rate_per_minute: int = Field(default=60, ge=1, description="Requests per client per minute.")
    image_dir: Path | None = Field(default=None, description="Default <data_dir>/portal-img.")

    @model_validator(mode="after")
    def _funnel_device_is_the_mqtt_user(self) -> PortalSettings:
        """The broker lets the portal user write only its own device's funnel topic."""
        if self.mqtt_username is None:
            return self
        if "device_id" not in self.model_fields_set:
            self.device_id = self.mqtt_username
        elif self.device_id != self.mqtt_username:
            raise ValueError(
                f"TP_PORTAL_DEVICE_ID ({self.device_id}) must equal TP_PORTAL_MQTT_USERNAME "
                f"({self.mqtt_username}): the portal's ACL allows only its own funnel topic"
            )
        return self

    def mqtt_client_settings(self, process: MqttClientSettings) -> MqttClientSettings:
        """The process's broker and TLS with the portal's own identity (when configured)."""
        if self.mqtt_username is None:
            return process
        password = self.mqtt_password.get_secret_value() if self.mqtt_password else None
        return process.with_credentials(self.mqtt_username, password)
