"""The secured brokers' rig for end-to-end tests: a TLS + password + ACL Mosquitto beside
a SASL_SSL Kafka (same CA), the MQTT passwords of every identity, and the environment each
``tourpulse`` service is started with under its own Kafka and MQTT identity."""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from core.kafka_client import KafkaClientSettings
from core.mqtt_client import MqttClientSettings, make_mqtt_client
from core.settings import Settings
from infra.cli import main
from infra.stack.certs import ServerCert, make_server_cert
from infra.stack.secure_kafka import ADMIN
from schemas.codec import encode_event
from schemas.envelope import EventBase
from tests.support.edge_wifi_support import AGENT, PrivateMosquitto, spawn_cli, write_device_configs
from tests.support.gateway_samples import topic_for


def kafka_env(settings: KafkaClientSettings) -> dict[str, str]:
    assert settings.password is not None and settings.username is not None
    return {
        "TP_KAFKA_BOOTSTRAP": settings.bootstrap,
        "TP_KAFKA_SECURITY_PROTOCOL": settings.security_protocol,
        "TP_KAFKA_USERNAME": settings.username,
        "TP_KAFKA_PASSWORD": settings.password.get_secret_value(),
        "TP_KAFKA_TLS_CA": str(settings.tls_ca),
    }


@dataclass
class SecureMqtt:
    """A TLS + password + ACL Mosquitto for the run (same CA as the secure Kafka), the MQTT
    passwords of every identity, and the environment every service shares."""

    broker: PrivateMosquitto
    certs: ServerCert
    passwords: dict[str, str]
    env: dict[str, str]

    @classmethod
    def start(
        cls,
        tmp_path: Path,
        kafka: dict[str, KafkaClientSettings],
        database_url: str,
        namespace: str,
    ) -> SecureMqtt:
        cfg_dir, _ = write_device_configs(tmp_path)
        out, secrets_file = tmp_path / "mqtt", tmp_path / "mqtt-secrets.yaml"
        argv = ["devices", "acl", "--config", str(cfg_dir), "--secrets", str(secrets_file)]
        services = ("gateway=tp-gateway", "api=tp-api", "portal=tp-portal")
        assert main([*argv, "--out", str(out), *(a for v in services for a in ("--service", v)),
                     "--generate-missing"]) == 0  # fmt: skip
        passwords = {
            k.removeprefix("mqtt-"): v for k, v in yaml.safe_load(secrets_file.read_text()).items()
        }
        ca = kafka[ADMIN].tls_ca
        certs = make_server_cert(Path(str(ca)).parent)  # the same CA and server certificate
        broker = PrivateMosquitto(
            tmp_path,
            f"cafile {certs.ca}\ncertfile {certs.cert}\nkeyfile {certs.key}\n"
            f"allow_anonymous false\npassword_file {out / 'passwd'}\nacl_file {out / 'acl'}\n",
        ).start()
        env = {"TP_TOPIC_NAMESPACE": namespace, "TP_DEVICE_CONFIGS": str(cfg_dir),
               "TP_MQTT_HOST": "127.0.0.1", "TP_MQTT_PORT": str(broker.port),
               "TP_MQTT_TLS_CA": str(certs.ca), "DATABASE_URL": database_url,
               "TP_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
        return cls(broker, certs, passwords, env)

    def device(self) -> MqttClientSettings:
        return MqttClientSettings(host="127.0.0.1", port=self.broker.port, tls_ca=self.certs.ca)

    def spawn(self, argv: list[str], kafka: KafkaClientSettings, log: Path,
              mqtt_user: str | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
        """A ``tourpulse`` service with its own Kafka (and MQTT) identity."""
        env = {**os.environ, **self.env, **kafka_env(kafka)}
        if mqtt_user is not None:
            env |= {"TP_MQTT_USERNAME": mqtt_user, "TP_MQTT_PASSWORD": self.passwords[mqtt_user]}
        return spawn_cli(argv, env, log)

    def api_settings(self, kafka: KafkaClientSettings, monkeypatch: pytest.MonkeyPatch) -> Settings:
        """The API's settings (tp-api on both brokers; the portal inside it as tp-portal)."""
        for key, value in self.env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("TP_PORTAL_MQTT_USERNAME", "tp-portal")
        monkeypatch.setenv("TP_PORTAL_MQTT_PASSWORD", self.passwords["tp-portal"])
        return Settings(
            kafka_bootstrap=kafka.bootstrap, kafka_security_protocol=kafka.security_protocol,
            kafka_username=kafka.username,
            kafka_password=kafka.secret(), kafka_tls_ca=kafka.tls_ca,
            mqtt_username="tp-api", mqtt_password=self.passwords["tp-api"],
        )  # fmt: skip


def publish_as_device(device: MqttClientSettings, password: str, event: EventBase) -> None:
    """Publish as the device (its own MQTT user) over TLS; QoS 1, acknowledged."""
    client = make_mqtt_client(
        device.with_credentials(AGENT, password), f"sec-{uuid.uuid4().hex[:6]}"
    )
    client.connect(device.host, device.port)
    client.loop_start()
    client.publish(topic_for(event), encode_event(event), qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
