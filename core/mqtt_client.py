"""One way to build an MQTT client: :class:`MqttClientSettings` + :func:`make_mqtt_client`.

Why one factory: every process that talks to Mosquitto (edge link, simulator, camera agent,
gateway, API command/status clients, portal funnel, benches) used to construct paho by
hand, and several silently ignored the configured credentials and TLS CA, so they only
worked against an open broker. Every client now goes through here, so a secured broker
(password file + ACL + TLS) works everywhere or fails loudly at start-up.

Why here (``edge.link``): edge agents must not import central settings (Kafka, database);
this module depends only on pydantic and paho, so edge and central code can both use it.
Central services build the settings from ``TP_MQTT_*`` with :meth:`MqttClientSettings.from_env`.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

ENV_PREFIX = "TP_MQTT_"


class MqttClientSettings(BaseModel):
    """Where the broker is and how to authenticate, validated as a whole."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536)] = 1883
    username: str | None = None
    password: SecretStr | None = None
    tls_ca: Path | None = Field(default=None, description="CA bundle; enables TLS when set.")
    tls_cert: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    tls_key: Path | None = Field(default=None, description="Private key of ``tls_cert``.")

    @model_validator(mode="after")
    def _consistent(self) -> MqttClientSettings:
        if self.password is not None and not self.username:
            raise ValueError("an MQTT password is set without a username")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("an MQTT client certificate needs its key (and vice versa)")
        if self.tls_cert is not None and self.tls_ca is None:
            raise ValueError("an MQTT client certificate needs TLS: set the CA bundle too")
        for name in ("tls_ca", "tls_cert", "tls_key"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"MQTT {name} file not found: {path}")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_ca is not None

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **overrides: object
    ) -> MqttClientSettings:
        """Read ``TP_MQTT_HOST/PORT/USERNAME/PASSWORD/TLS_CA/TLS_CERT/TLS_KEY``."""
        source = os.environ if env is None else env
        values: dict[str, object] = {}
        for field in cls.model_fields:
            raw = source.get(ENV_PREFIX + field.upper())
            if raw:
                values[field] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    def with_credentials(self, username: str | None, password: str | None) -> MqttClientSettings:
        """The same broker and TLS with another identity (e.g. a device's own user)."""
        return self.model_copy(
            update={
                "username": username,
                "password": SecretStr(password) if password is not None else None,
            }
        )


def make_mqtt_client(
    settings: MqttClientSettings,
    client_id: str = "",
    *,
    protocol: MQTTProtocolVersion = mqtt.MQTTv5,
    manual_ack: bool = False,
) -> mqtt.Client:
    """A paho 2.x client (MQTT 5 by default) with the settings' credentials and TLS applied.

    Connecting stays the caller's job (``connect``/``connect_async`` with
    ``settings.host``/``settings.port``), as do callbacks, clean start and the Last Will:
    they differ per client, authentication does not.
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id[:64],
        protocol=protocol,
        manual_ack=manual_ack,
    )
    if settings.username:
        password = settings.password.get_secret_value() if settings.password else None
        client.username_pw_set(settings.username, password)
    if settings.tls_ca is not None:
        client.tls_set(
            ca_certs=str(settings.tls_ca),
            certfile=str(settings.tls_cert) if settings.tls_cert else None,
            keyfile=str(settings.tls_key) if settings.tls_key else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    return client
