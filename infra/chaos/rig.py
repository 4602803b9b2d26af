"""The pipeline under test: brokers, database and every TourPulse service, all restartable.

Mosquitto and PostgreSQL are always private (``tourpulse stack``'s own starters; the
embedded PostgreSQL starts in about a second), since restarting them is a fault and the
gateway forwards every topic it sees. In a full run Kafka is private too (the reliability
port range) so it can be stopped; a quick run (``make test``) uses the shared Kafka,
isolated by topic namespace, and skips the Kafka fault. With ``brokers=3`` Kafka is a
private KRaft cluster (``kafka_leader_kill``); a full run also starts the API, whose live
SSE feed is watched across the Kafka stop. Services run through the real
``tourpulse`` CLI. The edge agent's state (its SQLite outbox) lives on a small tmpfs when
the suite runs as root, so the "disk full" fault is a real ENOSPC; otherwise it is skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import psycopg
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from psycopg import sql

from core.kafka_client import as_kafka
from core.mqtt_client import MqttClientSettings, make_mqtt_client
from core.ports import free_port
from core.privacy.keystore import KeyStore
from core.privacy.pseudonymiser import Pseudonymiser
from core.settings import Settings
from infra.bench.services import counter_value
from infra.chaos.nas import mac_of
from infra.chaos.proxy import UplinkProxy
from infra.stack import kafka as stack_kafka
from infra.stack import manager
from infra.stack import mqtt as stack_mqtt
from infra.stack import postgres as stack_pg
from infra.stack.state import Component, StackConfig
from schemas.topics import KafkaTopic

SITE = "ben-thanh-market"
NAS_ID = "btm-ap01"
SECRET = "chaos-secret"
#: Private ports for a full run (the reliability engineer's range; see docs/chaos.md).
FULL_PORTS = {"mqtt": 30883, "kafka": 30092, "pg": 30432}  # Kafka's controller on 30093
#: The 3-broker rig (``kafka_leader_kill``): brokers 30192-30194, controllers 30292-30294.
CLUSTER_PORTS = {"mqtt": 30884, "kafka": 30192, "pg": 30433}
TMPFS_MB = 64


@dataclass
class Proc:
    """One ``tourpulse`` child process with a loopback /healthz + /metrics port."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as fh:
            argv = [sys.executable, "-m", "infra.cli", *self.args]
            self.proc = subprocess.Popen(argv, env=self.env, stdout=fh, stderr=subprocess.STDOUT)
        return self

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return counter_value(r.read().decode(), name)

    def wait_healthy(self, timeout: float) -> None:
        if not wait_until(self.healthy, timeout, lambda: self.proc is not None and
                          self.proc.poll() is not None):  # fmt: skip
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} not healthy within {timeout:.0f} s:\n{tail}")


def _create_database(server_url: str, name: str) -> str:
    """A new database on the private server (thrown away with the server: never dropped)."""
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(urlsplit(server_url)._replace(path="/" + name))


def wait_until(
    cond: Callable[[], bool], timeout: float, dead: Callable[[], bool] = lambda: False
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not dead():
        if cond():
            return True
        time.sleep(0.1)
    return False


class Rig:
    """Start with :meth:`up`, tear down with :meth:`down` (also after a failure)."""

    def __init__(
        self,
        settings: Settings,
        work: Path,
        full: bool,
        log: Callable[[str], None],
        worker_args: tuple[str, ...] = (),
        brokers: int = 1,
    ) -> None:
        """``worker_args``: extra ``tourpulse worker`` options (e.g. group timeouts to compare);
        ``brokers`` 3: a private KRaft cluster (replication 3, min ISR 2) instead of one broker.
        """
        self.full, self.work, self.say = full or brokers > 1, work, log
        self.worker_args = list(worker_args)
        self.ns = "chaos" + uuid.uuid4().hex[:6]
        ports = CLUSTER_PORTS if brokers > 1 else FULL_PORTS
        if not self.full:
            ports = {"mqtt": free_port(), "kafka": 0, "pg": free_port()}
        kafka_port = settings.kafka_bootstrap.rpartition(":")[2]
        self.cfg = StackConfig(
            data_dir=work / "stack",
            mqtt_port=ports["mqtt"],
            kafka_port=ports["kafka"] or int(kafka_port),
            pg_port=ports["pg"],
            kafka_brokers=brokers,
            kafka_libs=Path(__file__).resolve().parents[2] / ".tourpulse" / "kafka" / "libs",
        )
        self.settings = settings
        self.components: dict[str, Component] = {}
        self.server_url = settings.database_url
        self.db_url = ""
        self.state_dir = work / "edge-state"
        self.tmpfs = False
        self.procs: dict[str, Proc] = {}
        self.env: dict[str, str] = {}
        self.proxy: UplinkProxy | None = None
        self.radius_port = 0
        self.duplicates_injected = 0  # set by the duplicate-delivery fault
        self.killed = ""  # the worker a fault killed, started again after the run
        self.notes: dict[str, object] = {}  # what a fault saw, added to its result

    # --- infrastructure -------------------------------------------------------------------
    def up(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.components["mqtt"] = stack_mqtt.ensure_mqtt(self.cfg, self.say)
        if self.full:
            self.components["kafka"] = stack_kafka.ensure_kafka(self.cfg, self.say)
        comp, self.server_url = stack_pg.ensure_postgres(self.cfg, self.say)
        self.components["postgres"] = comp
        for name, comp in self.components.items():
            if not comp.managed:  # a fault would not stop it: refuse instead of lying
                raise RuntimeError(f"{name}: {comp.address} is already in use by another server")
        self.db_url = _create_database(self.server_url, f"tp_{self.ns}")
        self._mount_state()
        self.proxy = UplinkProxy(self.cfg.mqtt_port)
        self._write_configs()
        self.env = env = {
            **os.environ,
            "TP_TOPIC_NAMESPACE": self.ns,
            "DATABASE_URL": self.db_url,
            "TP_MQTT_HOST": "127.0.0.1",
            "TP_MQTT_PORT": str(self.cfg.mqtt_port),
            "TP_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "TP_DEVICE_CONFIGS": str(self.work / "device_configs"),
        }
        self.add_gateway("gateway")
        for i in (1, 2):  # two workers: a killed one's partitions are taken over
            self._add(f"worker{i}", ["worker", "--session-timeout", "900", *self.worker_args], env)
        agent_port = free_port()
        self._write_agent_config(agent_port)
        self.procs["agent"] = Proc("agent", ["-v", "edge", "wifi", "--config",
                                             str(self.work / "edge-wifi.yaml")],
                                   env, self.work / "agent.log", agent_port)  # fmt: skip
        if self.full:  # the live SSE feed, watched across the Kafka stop
            port = free_port()
            self.procs["api"] = Proc("api", ["api", "--host", "127.0.0.1", "--port", str(port)],
                                     env, self.work / "api.log", port)  # fmt: skip
        for p in self.procs.values():
            p.start()
        for p in self.procs.values():
            p.wait_healthy(180)
        self.say(f"chaos rig up: namespace {self.ns}, mqtt {self.cfg.mqtt_port}, "
                 f"kafka {self.kafka_bootstrap}, tmpfs outbox {self.tmpfs}")  # fmt: skip

    @property
    def kafka_bootstrap(self) -> str:
        return self.cfg.kafka_bootstrap if self.full else self.settings.kafka_bootstrap

    def add_gateway(self, name: str) -> Proc:
        """A gateway in the rig's share group (client id from ``name``), not yet started."""
        self._add(name, ["gateway", "--client-id", f"{name}-{self.ns}", "--share-group",
                         self.ns, "--stats-every", "0"], self.env)  # fmt: skip
        return self.procs[name]

    def _add(self, name: str, args: list[str], env: dict[str, str]) -> None:
        port = free_port()
        self.procs[name] = Proc(name, [*args, "--metrics-port", str(port)], env,
                                self.work / f"{name}.log", port)  # fmt: skip

    def _mount_state(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0 or shutil.which("mount") is None:
            return
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs", str(self.state_dir)],
            capture_output=True, check=False,
        )  # fmt: skip
        self.tmpfs = result.returncode == 0

    def down(self) -> None:
        for p in self.procs.values():
            p.stop()
        if self.proxy is not None:
            self.proxy.close()
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.state_dir)], check=False)
        with contextlib.suppress(Exception):  # best effort: leftover topics are harmless
            from infra.bench.services import delete_kafka_topics

            delete_kafka_topics(self.kafka_bootstrap, self.ns)
        for comp in self.components.values():
            manager.stop_component(comp)

    # --- faults ---------------------------------------------------------------------------
    def stop_component(self, name: str) -> None:
        manager.stop_component(self.components[name])

    def start_component(self, name: str) -> None:
        if name == "mqtt":
            self.components[name] = stack_mqtt.ensure_mqtt(self.cfg, self.say)
        elif name == "kafka":
            self.components[name] = stack_kafka.ensure_kafka(self.cfg, self.say)
        else:
            self.components[name] = stack_pg.ensure_postgres(self.cfg, self.say)[0]

    def topic(self, topic: KafkaTopic) -> str:
        return self.settings.model_copy(update={"topic_namespace": self.ns}).kafka_topic(topic)

    def site_partition(self, topic: str) -> tuple[int, int, int]:
        """(leader node, in-sync replicas, replicas) of the partition carrying the site's
        events: the one partition of ``topic`` that holds records (one site, one key)."""
        kafka = as_kafka(self.kafka_bootstrap)
        admin = AdminClient(kafka.librdkafka())
        parts = admin.list_topics(topic, timeout=10).topics[topic].partitions
        probe = Consumer(kafka.librdkafka(**{"group.id": "chaos-probe"}))
        try:
            sizes = {p: probe.get_watermark_offsets(TopicPartition(topic, p), 10)[1] for p in parts}
        finally:
            probe.close()
        meta = parts[max(sizes, key=lambda p: sizes[p])]
        return meta.leader, len(meta.isrs), len(meta.replicas)

    def kill_broker(self, node: int) -> None:
        """``kill -9`` one node of the private cluster (pids recorded by kafka_cluster.py)."""
        nodes = json.loads((self.cfg.data_dir / "kafka-cluster" / "nodes.json").read_text())
        os.kill(int(nodes[node - 1][0]), signal.SIGKILL)

    def end_mqtt_session(self, name: str) -> None:
        """Discard a gateway's persistent session (clean start, expiry 0): a member that
        stopped for good still gets its round-robin share of ``$share`` messages until its
        session expires, so a gateway taken out of the group must end it (scale-down)."""
        broker = MqttClientSettings(host="127.0.0.1", port=self.cfg.mqtt_port)
        client = make_mqtt_client(broker, f"{name}-{self.ns}")
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 0
        client.connect(broker.host, broker.port, clean_start=True, properties=props)
        client.loop_start()
        wait_until(client.is_connected, 10)
        client.disconnect()
        client.loop_stop()

    def stored_session_ids(self, sessions: list[str]) -> dict[str, str]:
        """Stored session id -> NAS Acct-Session-Id: the agent publishes only a keyed hash of
        (NAS, session id, pseudonymous client), so the harness computes the same with the
        agent's own key (the deployment's default scope and zone)."""
        keys = KeyStore.in_dir(self.state_dir, "hcmc", tz=ZoneInfo("Asia/Ho_Chi_Minh"))
        pseudo = Pseudonymiser(keys)
        out = {}
        for session in sessions:
            client = pseudo.pseudonymise(mac_of(session)).client_id
            out[f"radius-{pseudo.token('127.0.0.1', session, client)}"] = session
        return out

    def fill_disk(self) -> Path:
        """Fill the outbox's tmpfs to the last byte; returns the filler to delete later."""
        filler = self.state_dir / "filler"
        with filler.open("wb", buffering=0) as fh:
            for block in (1 << 20, 4096, 1):
                with contextlib.suppress(OSError):
                    while fh.write(b"\0" * block):
                        pass
        return filler

    def _write_configs(self) -> None:
        dc = self.work / "device_configs"
        dc.mkdir(exist_ok=True)
        (dc / "sites.yaml").write_text(
            f"sites:\n- id: {SITE}\n  name_vi: Chợ Bến Thành\n  name_en: Ben Thanh Market\n"
            "  kind: urban\n  lat: 10.7725\n  lon: 106.698\n  capacity_persons: 3000\n"
            "  radius_nas:\n  - ip: 127.0.0.1\n    secret: secret:radius\n"
        )
        (dc / "access_points.yaml").write_text(
            f"access_points:\n- id: {SITE}-ap01\n  site: {SITE}\n  name: AP 1\n"
            f"  nas_identifier: {NAS_ID}\n"
        )

    def _write_agent_config(self, metrics_port: int) -> None:
        secrets = self.work / "secrets.yaml"
        secrets.write_text(f"radius: {SECRET}\n")
        secrets.chmod(0o600)
        assert self.proxy is not None
        self.radius_port = free_port()
        (self.work / "edge-wifi.yaml").write_text(
            f"device: btm-wifi\nsite: {SITE}\nstate_dir: {self.state_dir}\n"
            f"device_configs: {self.work / 'device_configs'}\nsecrets_file: {secrets}\n"
            f"metrics_port: {metrics_port}\n"
            f"mqtt:\n  port: {self.proxy.port}\n  max_inflight: 100\n  reconnect_max_s: 2\n"
            f"radius:\n  host: 127.0.0.1\n  port: {self.radius_port}\n"
        )
