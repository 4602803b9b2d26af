"""``tourpulse stack up --secure``: Mosquitto and Kafka with TLS, authentication and ACLs.

Everything a secured deployment needs is generated under ``<data dir>/secure``: a CA and
server certificate for the run, the Mosquitto password file and least-privilege ACL (from
the device configs, see ``tourpulse devices acl``), SCRAM users and Kafka ACLs for every
service principal, and one ``<service>.env`` file (0600) per service with the ``TP_MQTT_*``
and ``TP_KAFKA_*`` variables it runs with. PostgreSQL is the ordinary one.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from core.kafka_client import KafkaClientSettings
from core.settings import Settings
from device_configs.acl import (
    MqttUser,
    device_users,
    passwords_for,
    render_acl,
    render_passwd,
)
from device_configs.acl import write_private as write_private_file
from device_configs.loader import load_device_configs
from infra.kafka_acl import apply_grants, service_grants
from infra.stack.certs import make_server_cert
from infra.stack.kafka import fetch_jars
from infra.stack.mqtt import find_mosquitto, mosquitto_version
from infra.stack.postgres import ensure_postgres
from infra.stack.procs import current_user, port_open, spawn_detached
from infra.stack.secure_kafka import ADMIN, start_secure_kafka
from infra.stack.state import Component, StackConfig, StackState

MQTT_SERVICES = {"gateway": "tp-gateway", "api": "tp-api", "portal": "tp-portal"}
KAFKA_SERVICES = ("tp-gateway", "tp-worker", "tp-api")
READY_TIMEOUT_S = 120.0


def up_secure(cfg: StackConfig, settings: Settings, say: Callable[[str], None]) -> StackState:
    """Start the secured brokers (and PostgreSQL); record them like ``up`` does."""
    home = cfg.data_dir / "secure"
    certs = make_server_cert(home / "tls")
    say(f"secure: CA {certs.ca}")
    users = device_users(
        load_device_configs(settings.device_configs),
        [f"{role}={name}" for role, name in MQTT_SERVICES.items()],
    )
    secrets_file = home / "secrets.yaml"
    mqtt_pw, _ = passwords_for(users, secrets_file, generate_missing=True)
    write_private_file(home / "mqtt" / "passwd", render_passwd(users, mqtt_pw))
    write_private_file(home / "mqtt" / "acl", render_acl(users))
    kafka_pw, _ = passwords_for(  # stored as mqtt-kafka-<user>: one secrets file for both
        [MqttUser(f"kafka-{n}") for n in (ADMIN, *KAFKA_SERVICES)], secrets_file, True
    )
    scram = {name: kafka_pw[f"kafka-{name}"] for name in (ADMIN, *KAFKA_SERVICES)}

    state = StackState.load(cfg.data_dir)
    state.components["mqtt"] = _start_mosquitto(cfg, home, certs.ca.parent, say)
    state.save(cfg.data_dir)
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("java not found: `make deps` installs it")
    say(f"kafka: starting SASL_SSL (SCRAM-SHA-512) broker on {cfg.kafka_bootstrap} ...")
    broker = start_secure_kafka(
        java,
        fetch_jars(cfg.libs_dir, say),
        home / "kafka",
        certs,
        scram,
        cfg.kafka_host,
        cfg.kafka_port,
    )
    state.components["kafka"] = Component(
        "kafka", "apache-kafka (secure)", broker.bootstrap, "SASL_SSL", True, broker.proc,
        log=str(home / "kafka" / "logs"),
    )  # fmt: skip
    state.save(cfg.data_dir)
    admin_settings = _kafka(broker.bootstrap, ADMIN, scram[ADMIN], certs.ca)
    _wait_kafka(AdminClient(admin_settings.librdkafka(log_level=0)), broker.proc.alive)
    count = apply_grants(
        AdminClient(admin_settings.librdkafka(log_level=0)),
        service_grants(settings.topic_namespace),
    )
    say(f"kafka: ready; {count} ACLs for {', '.join(KAFKA_SERVICES)}")
    pg, state.database_url = ensure_postgres(cfg, say)
    state.components["postgres"] = pg
    state.save(cfg.data_dir)
    mqtt_for = {"gateway": "tp-gateway", "api": "tp-api", "portal": "tp-portal", "worker": None}
    for service, mqtt_user in mqtt_for.items():
        kafka_user = f"tp-{service}" if f"tp-{service}" in scram else "tp-api"
        env = {
            "TP_MQTT_HOST": cfg.mqtt_host,
            "TP_MQTT_PORT": str(cfg.mqtt_port),
            "TP_MQTT_TLS_CA": str(certs.ca),
            "TP_KAFKA_BOOTSTRAP": broker.bootstrap,
            "TP_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "TP_KAFKA_USERNAME": kafka_user,
            "TP_KAFKA_PASSWORD": scram[kafka_user],
            "TP_KAFKA_TLS_CA": str(certs.ca),
        }
        if mqtt_user:
            env |= {"TP_MQTT_USERNAME": mqtt_user, "TP_MQTT_PASSWORD": mqtt_pw[mqtt_user]}
        if service == "api":  # the portal is mounted in the API, with its own identity
            env |= {"TP_PORTAL_MQTT_USERNAME": "tp-portal",
                    "TP_PORTAL_MQTT_PASSWORD": mqtt_pw["tp-portal"]}  # fmt: skip
        text = "".join(f"{k}={v}\n" for k, v in env.items())
        write_private_file(home / f"{service}.env", text)
    say(f"secure: per-service settings in {home}/<gateway|api|portal|worker>.env")
    return state


def _kafka(bootstrap: str, user: str, password: str, ca: Path) -> KafkaClientSettings:
    return KafkaClientSettings.model_validate(
        {"bootstrap": bootstrap, "security_protocol": "SASL_SSL", "username": user,
         "password": password, "tls_ca": ca}
    )  # fmt: skip


def _wait_kafka(admin: AdminClient, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            admin.list_topics(timeout=3)
            return
        except KafkaException:
            if not alive() or time.monotonic() > deadline:
                raise RuntimeError("the secure Kafka did not become ready") from None
            time.sleep(0.5)


def _start_mosquitto(
    cfg: StackConfig, home: Path, tls: Path, say: Callable[[str], None]
) -> Component:
    binary = find_mosquitto()
    if binary is None:
        raise RuntimeError("mosquitto not found (apt-get install mosquitto)")
    (home / "mosquitto").mkdir(parents=True, exist_ok=True)
    conf = home / "mosquitto" / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                "# Generated by `tourpulse stack up --secure`: TLS + passwords + ACL.",
                f"listener {cfg.mqtt_port} {cfg.mqtt_host}",
                f"cafile {tls / 'ca.crt'}",
                f"certfile {tls / 'server.crt'}",
                f"keyfile {tls / 'server.key'}",
                "allow_anonymous false",
                f"password_file {home / 'mqtt' / 'passwd'}",
                f"acl_file {home / 'mqtt' / 'acl'}",
                "log_dest stderr",
                f"user {current_user()}",
                "",
            ]
        )
    )
    log = home / "mosquitto" / "mosquitto.log"
    version = mosquitto_version(binary)
    say(f"mqtt: starting {version} with TLS + ACL on {cfg.mqtt_host}:{cfg.mqtt_port}")
    proc = spawn_detached([binary, "-c", str(conf)], log)
    deadline = time.monotonic() + 20
    while not port_open(cfg.mqtt_host, cfg.mqtt_port):
        if not proc.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"secure Mosquitto did not start: see {log}")
        time.sleep(0.1)
    return Component(
        "mqtt", "mosquitto (TLS+ACL)", f"{cfg.mqtt_host}:{cfg.mqtt_port}", version, True, proc,
        log=str(log),
    )  # fmt: skip
