"""A real SASL_SSL (SCRAM-SHA-512) Kafka with the StandardAuthorizer and the generated ACLs:
unauthenticated and wrong-password clients are refused, and each service principal can do
what it needs and nothing else, through the one :class:`KafkaClientSettings` model for both
confluent-kafka and aiokafka. The broker is started once for the module (~20-30 s).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError as AioKafkaError
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from core.kafka_client import KafkaClientSettings
from core.mqtt_client import MqttClientSettings, make_mqtt_client
from core.settings import Settings
from infra.cli import main
from infra.kafka_acl import apply_grants, service_grants
from infra.stack.certs import make_server_cert
from infra.stack.kafka import fetch_jars
from infra.stack.procs import stop_process
from infra.stack.secure_kafka import ADMIN, start_secure_kafka
from schemas.codec import encode_event
from schemas.topics import KafkaTopic
from tests.support.edge_wifi_support import (
    AGENT,
    SITE,
    PrivateMosquitto,
    healthy,
    spawn_cli,
    wait_until,
    write_device_configs,
)
from tests.support.edge_wifi_support import stop_process as stop_cli
from tests.support.gateway_samples import session_start, topic_for
from tests.support.worker_support import query, start_worker, stop_worker, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NS = "sec"
USERS = ("tp-gateway", "tp-worker", "tp-api")


def _free_pair(lo: int = 27000, hi: int = 27998) -> int:
    """A port whose successor is free too (broker + controller), in this suite's range."""
    for port in range(lo, hi, 2):
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair in 27000-27999")


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, KafkaClientSettings]]:
    java = shutil.which("java")
    if java is None:
        pytest.fail("java is not installed (make deps)")
    libs = fetch_jars(REPO / ".tourpulse" / "kafka" / "libs", print)  # no-op after kafka-jars
    root = tmp_path_factory.mktemp("secure-kafka")
    certs = make_server_cert(root / "tls")
    passwords = {u: secrets.token_urlsafe(16) for u in (ADMIN, *USERS)}
    broker = start_secure_kafka(java, libs, root / "kafka", certs, passwords, port=_free_pair())

    def as_user(user: str, password: str | None = None) -> KafkaClientSettings:
        return KafkaClientSettings.model_validate(
            {
                "bootstrap": broker.bootstrap,
                "security_protocol": "SASL_SSL",
                "username": user,
                "password": password or passwords[user],
                "tls_ca": certs.ca,
            }
        )

    try:
        admin = AdminClient(as_user(ADMIN).librdkafka())
        deadline = time.monotonic() + 90
        while True:
            try:
                admin.list_topics(timeout=3)
                break
            except KafkaException:
                if time.monotonic() > deadline or not broker.proc.alive():
                    log = (root / "kafka" / "logs" / "kafka.out").read_text()[-3000:]
                    pytest.fail(f"secure Kafka did not start:\n{log}")
                time.sleep(0.5)
        apply_grants(admin, service_grants(NS))
        from confluent_kafka.admin import NewTopic

        wanted = [f"{NS}.{t}" for t in KafkaTopic]
        for future in admin.create_topics([NewTopic(t, 1, 1) for t in wanted]).values():
            future.result(30)
        clients = {u: as_user(u) for u in (ADMIN, *USERS)}
        clients["wrong-password"] = as_user("tp-api", "not-the-password")
        clients["plaintext"] = KafkaClientSettings(bootstrap=broker.bootstrap)
        yield clients
    finally:
        stop_process(broker.proc)


def _produce(settings: KafkaClientSettings, topic: str) -> str | None:
    """None when the broker acknowledged the record, else the error name."""
    errors: list[str | None] = []
    producer = Producer(
        settings.librdkafka_producer(**{"message.timeout.ms": 8000, "log_level": 0})
    )
    producer.produce(
        topic, b"{}", on_delivery=lambda err, _m: errors.append(err.name() if err else None)
    )
    producer.flush(10)
    return errors[0] if errors else "no delivery report"


def test_unauthenticated_and_wrong_password_clients_are_refused(kafka) -> None:
    for who in ("plaintext", "wrong-password"):
        admin = AdminClient(kafka[who].librdkafka(log_level=0))
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=5)


async def test_wrong_password_is_refused_for_aiokafka_too(kafka) -> None:
    producer = AIOKafkaProducer(**kafka["wrong-password"].aiokafka(request_timeout_ms=5000))
    with pytest.raises(AioKafkaError):
        try:
            await producer.start()
        finally:
            await producer.stop()


def test_each_principal_writes_exactly_where_it_may(kafka) -> None:
    session, live = f"{NS}.{KafkaTopic.WIFI_SESSION}", f"{NS}.{KafkaTopic.OCCUPANCY_LIVE}"
    changes, dlq = f"{NS}.{KafkaTopic.ALERT_CHANGES}", f"{NS}.{KafkaTopic.DEAD_LETTER}"
    denied = "TOPIC_AUTHORIZATION_FAILED"
    got = {
        ("tp-gateway", session): _produce(kafka["tp-gateway"], session),
        ("tp-gateway", dlq): _produce(kafka["tp-gateway"], dlq),
        ("tp-gateway", live): _produce(kafka["tp-gateway"], live),
        ("tp-gateway", changes): _produce(kafka["tp-gateway"], changes),
        ("tp-api", changes): _produce(kafka["tp-api"], changes),
        ("tp-api", session): _produce(kafka["tp-api"], session),
        ("tp-api", live): _produce(kafka["tp-api"], live),
        ("tp-worker", live): _produce(kafka["tp-worker"], live),
        ("tp-worker", "other.tp.occupancy.live.v1"): _produce(
            kafka["tp-worker"], "other.tp.occupancy.live.v1"
        ),
    }
    assert got == {
        ("tp-gateway", session): None,
        ("tp-gateway", dlq): None,
        ("tp-gateway", live): denied,
        ("tp-gateway", changes): denied,
        ("tp-api", changes): None,
        ("tp-api", session): denied,
        ("tp-api", live): denied,
        ("tp-worker", live): None,
        ("tp-worker", "other.tp.occupancy.live.v1"): denied,  # outside its namespace
    }


async def _can_read(settings: KafkaClientSettings, topic: str, group: str | None) -> bool:
    """True when the records already in ``topic`` reach this principal (and it may commit)."""
    consumer = AIOKafkaConsumer(
        **settings.aiokafka(group_id=group, request_timeout_ms=8000, auto_offset_reset="earliest")
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got = await consumer.getmany(tp, timeout_ms=4000)  # unauthorised: logged, no records
        if group is not None:
            await consumer.commit()  # the group's READ right is checked here
        return bool(got.get(tp))
    except AioKafkaError:
        return False
    finally:
        await consumer.stop()


async def test_each_principal_reads_exactly_what_it_may(kafka) -> None:
    session, live = f"{NS}.{KafkaTopic.WIFI_SESSION}", f"{NS}.{KafkaTopic.OCCUPANCY_LIVE}"
    assert _produce(kafka[ADMIN], session) is None and _produce(kafka[ADMIN], live) is None
    assert await _can_read(kafka["tp-worker"], session, f"{NS}.tourpulse-occupancy")
    assert not await _can_read(kafka["tp-worker"], session, "other-group")  # outside prefix
    assert await _can_read(kafka["tp-api"], live, None)
    assert not await _can_read(kafka["tp-api"], session, None)
    assert not await _can_read(kafka["tp-gateway"], session, None)


def _kafka_env(settings: KafkaClientSettings) -> dict[str, str]:
    assert settings.password is not None and settings.username is not None
    return {
        "TP_KAFKA_BOOTSTRAP": settings.bootstrap,
        "TP_KAFKA_SECURITY_PROTOCOL": settings.security_protocol,
        "TP_KAFKA_USERNAME": settings.username,
        "TP_KAFKA_PASSWORD": settings.password.get_secret_value(),
        "TP_KAFKA_TLS_CA": str(settings.tls_ca),
    }


@pytest.mark.slow
async def test_end_to_end_over_tls_and_sasl_reaches_postgres(
    kafka, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """device -(MQTT TLS, own user)-> gateway -(SASL_SSL)-> worker -(SASL_SSL)-> PostgreSQL."""
    cfg_dir, _ = write_device_configs(tmp_path)
    out, secrets_file = tmp_path / "mqtt", tmp_path / "mqtt-secrets.yaml"
    argv = ["devices", "acl", "--config", str(cfg_dir), "--secrets", str(secrets_file)]
    assert main([*argv, "--out", str(out), "--service", "gateway=tp-gateway",
                 "--generate-missing"]) == 0  # fmt: skip
    mqtt_pw = {
        k.removeprefix("mqtt-"): v for k, v in yaml.safe_load(secrets_file.read_text()).items()
    }
    ca = kafka[ADMIN].tls_ca
    certs = make_server_cert(Path(str(ca)).parent)  # the same CA and server certificate
    broker = PrivateMosquitto(
        tmp_path,
        f"cafile {certs.ca}\ncertfile {certs.cert}\nkeyfile {certs.key}\n"
        f"allow_anonymous false\npassword_file {out / 'passwd'}\nacl_file {out / 'acl'}\n",
    ).start()
    common = {"TP_TOPIC_NAMESPACE": NS, "TP_DEVICE_CONFIGS": str(cfg_dir),
              "TP_MQTT_HOST": "127.0.0.1", "TP_MQTT_PORT": str(broker.port),
              "TP_MQTT_TLS_CA": str(certs.ca), "DATABASE_URL": database_url,
              "TP_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    gw_port = _free_pair(27500)
    gw_mqtt = {"TP_MQTT_USERNAME": "tp-gateway", "TP_MQTT_PASSWORD": mqtt_pw["tp-gateway"]}
    gw_env = {**os.environ, **common, **_kafka_env(kafka["tp-gateway"]), **gw_mqtt}
    gateway = spawn_cli(["gateway", "--metrics-port", str(gw_port), "--client-id", "gw-sec"],
                        gw_env, tmp_path / "gateway.log")  # fmt: skip
    for key, value in {**common, **_kafka_env(kafka["tp-worker"])}.items():
        monkeypatch.setenv(key, value)
    worker_settings = Settings()
    worker = start_worker(worker_settings, tmp_path / "worker.log")
    device = MqttClientSettings(host="127.0.0.1", port=broker.port, tls_ca=certs.ca)
    event = session_start(SITE, 1, device=AGENT)
    try:
        await asyncio.to_thread(wait_until, lambda: healthy(gw_port), 90, "gateway healthy")
        client = make_mqtt_client(device.with_credentials(AGENT, mqtt_pw[AGENT]), "sec-device")
        client.connect(device.host, device.port)
        client.loop_start()
        client.publish(topic_for(event), encode_event(event), qos=1).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        sql = f"SELECT session_id FROM wifi_sessions WHERE site = '{SITE}'"
        await wait_for(lambda: bool(query(database_url, sql)), 120, "session row", worker,
                       tmp_path / "worker.log")  # fmt: skip
        assert query(database_url, sql) == [(event.data.session_id,)]
    finally:
        stop_cli(gateway)
        stop_worker(worker)
        broker.stop()
