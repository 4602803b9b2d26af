"""The MQTT and Kafka client settings models: validated as a whole, rendered per library."""

from __future__ import annotations

import ssl
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from pydantic import ValidationError

from core.kafka_client import KafkaClientSettings, as_kafka
from core.mqtt_client import MqttClientSettings, make_mqtt_client
from core.settings import Settings
from infra.stack.certs import make_server_cert


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_server_cert(tmp_path_factory.mktemp("tls")).ca


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"password": "x"}, "without a username"),
        ({"tls_cert": "{ca}"}, "needs its key"),
        ({"tls_cert": "{ca}", "tls_key": "{ca}"}, "needs TLS"),
        ({"tls_ca": "/nonexistent/ca.crt"}, "not found"),
        ({"port": 0}, "greater than 0"),
    ],
)
def test_mqtt_settings_refuse_inconsistent_combinations(
    ca: Path, values: dict, message: str
) -> None:
    values = {k: v.format(ca=ca) if isinstance(v, str) else v for k, v in values.items()}
    with pytest.raises(ValidationError, match=message):
        MqttClientSettings.model_validate(values)


def test_mqtt_settings_from_env_and_central_settings_agree(ca: Path) -> None:
    env = {"TP_MQTT_HOST": "10.0.0.5", "TP_MQTT_PORT": "8883", "TP_MQTT_USERNAME": "tp-api",
           "TP_MQTT_PASSWORD": "s3cret", "TP_MQTT_TLS_CA": str(ca)}  # fmt: skip
    from_env = MqttClientSettings.from_env(env)
    central = Settings(mqtt_host="10.0.0.5", mqtt_port=8883, mqtt_username="tp-api",
                       mqtt_password="s3cret", mqtt_tls_ca=ca).mqtt_client_settings()  # fmt: skip
    assert from_env == central and from_env.tls
    assert "s3cret" not in repr(from_env)  # secrets never end up in logs


def test_the_factory_applies_credentials_and_verifying_tls(ca: Path) -> None:
    settings = MqttClientSettings(username="cam1", password="pw", tls_ca=ca)  # type: ignore[arg-type]
    client = make_mqtt_client(settings, "x" * 80, manual_ack=True)
    assert client._client_id == b"x" * 64  # MQTT 3.1.1 brokers' limit, as before
    assert client._protocol == mqtt.MQTTv5
    assert (client._username, client._password) == (b"cam1", b"pw")
    assert client._ssl_context is not None
    assert client._ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert client._ssl_context.check_hostname


def test_kafka_settings_refuse_inconsistent_combinations(ca: Path) -> None:
    with pytest.raises(ValidationError, match="needs a username and a password"):
        KafkaClientSettings(security_protocol="SASL_SSL")
    with pytest.raises(ValidationError, match="does not use SASL"):
        KafkaClientSettings(username="u", password="p")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="has no TLS"):
        KafkaClientSettings(tls_ca=ca)


def test_one_kafka_model_renders_the_same_security_for_every_library(ca: Path) -> None:
    k = KafkaClientSettings(bootstrap="a:9093,b:9093", security_protocol="SASL_SSL",
                            username="tp-worker", password="pw", tls_ca=ca)  # type: ignore[arg-type]  # fmt: skip
    rd = k.librdkafka_producer(**{"client.id": "gw"})
    assert rd["security.protocol"] == "SASL_SSL" and rd["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (rd["sasl.username"], rd["sasl.password"], rd["ssl.ca.location"]) == (
        "tp-worker",
        "pw",
        str(ca),
    )
    assert (rd["acks"], rd["enable.idempotence"], rd["client.id"]) == ("all", True, "gw")
    aio = k.aiokafka(group_id="g")
    assert aio["security_protocol"] == "SASL_SSL" and aio["sasl_plain_password"] == "pw"
    assert aio["ssl_context"].verify_mode == ssl.CERT_REQUIRED and aio["group_id"] == "g"
    assert as_kafka("h:1").librdkafka() == {
        "bootstrap.servers": "h:1",
        "security.protocol": "PLAINTEXT",
    }
