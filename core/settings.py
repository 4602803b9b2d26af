"""Runtime settings shared by every TourPulse service, read from ``TP_*`` env vars.

One cached :func:`get_settings` so every service agrees on where the brokers and the
database are. ``DATABASE_URL`` (the conventional name) wins; otherwise the address the
embedded stack recorded in ``<data_dir>/stack.json``; otherwise the local default.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:  # imported lazily: edge agents use these modules without central settings
    from core.kafka_client import KafkaClientSettings
    from core.mqtt_client import MqttClientSettings

DEFAULT_DATABASE_URL = "postgresql://tourpulse:tourpulse@127.0.0.1:5432/tourpulse"
DEVICE_CONFIG_DIR = Path(__file__).resolve().parent.parent / "device_configs" / "hcmc"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TP_", extra="ignore")

    data_dir: Path = Field(default=Path(".tourpulse"), description="State of the local stack.")
    device_configs: Path = Field(default=DEVICE_CONFIG_DIR, description="Device config dir.")

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_tls_ca: Path | None = None
    mqtt_tls_cert: Path | None = None
    mqtt_tls_key: Path | None = None

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_username: str | None = None
    kafka_password: str | None = None
    kafka_tls_ca: Path | None = None
    #: YOLOX-nano ONNX file for the camera agents' people counter (a deployment installs
    #: it; the demo uses ../shared/models). None: motion counting, named so in every event.
    camera_detector_model: Path | None = None
    camera_detect_fps: float = Field(default=5.0, gt=0, le=30)
    topic_namespace: str | None = Field(
        default=None, description="Prefix for Kafka topics and consumer groups (isolation)."
    )

    database_url_env: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "TP_DATABASE_URL")
    )

    api_host: str = "127.0.0.1"
    api_port: int = 8000

    @property
    def database_url(self) -> str:
        if self.database_url_env:
            return self.database_url_env
        recorded = read_stack_state(self.data_dir).get("database_url")
        return str(recorded) if recorded else DEFAULT_DATABASE_URL

    def mqtt_client_settings(self) -> MqttClientSettings:
        """This process's broker address, MQTT identity and TLS (see core.mqtt_client)."""
        from core.mqtt_client import MqttClientSettings

        return MqttClientSettings.model_validate(
            {
                "host": self.mqtt_host,
                "port": self.mqtt_port,
                "username": self.mqtt_username,
                "password": self.mqtt_password,
                "tls_ca": self.mqtt_tls_ca,
                "tls_cert": self.mqtt_tls_cert,
                "tls_key": self.mqtt_tls_key,
            }
        )

    def kafka_client_settings(self) -> KafkaClientSettings:
        """This process's Kafka address, SASL identity and TLS (see core.kafka_client)."""
        from core.kafka_client import KafkaClientSettings

        return KafkaClientSettings.model_validate(
            {
                "bootstrap": self.kafka_bootstrap,
                "security_protocol": self.kafka_security_protocol,
                "sasl_mechanism": self.kafka_sasl_mechanism,
                "username": self.kafka_username,
                "password": self.kafka_password,
                "tls_ca": self.kafka_tls_ca,
            }
        )

    def kafka_topic(self, topic: str) -> str:
        """A Kafka topic name inside this deployment's namespace."""
        return f"{self.topic_namespace}.{topic}" if self.topic_namespace else str(topic)


def read_stack_state(data_dir: Path) -> dict[str, object]:
    """What ``tourpulse stack up`` recorded about the running stack (empty if nothing)."""
    try:
        state = json.loads((data_dir / "stack.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return state if isinstance(state, dict) else {}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
