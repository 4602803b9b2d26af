"""A 3-broker Apache Kafka KRaft cluster on loopback (``stack up --kafka-brokers 3``).

Why: with one broker, "acks=all" means one copy; a lost broker loses or stalls
everything. Here every node is broker + controller, topics get replication factor 3 and
``min.insync.replicas=2``, so with idempotent ``acks=all`` producers one broker may die
(even the partition leader, mid-production) without losing an acknowledged record.

Ports: brokers on ``port .. port+N-1``, controllers on ``port+100 ..`` (e.g. 22092-22094
and 22192-22194). The stack records the cluster as one ``kafka`` component whose
``stop_command`` (``python -m infra.stack.kafka_cluster stop <home>``) stops every node
recorded in ``<home>/nodes.json``, so ``stack down`` needs no cluster-specific code.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from infra.stack.kafka import (
    JVM_OPTS,
    KAFKA_DIR,
    KafkaUnavailable,
    _storage_tool,
    kafka_version,
    metadata_ok,
)
from infra.stack.procs import (
    STOP_GRACE_S,
    ProcessId,
    spawn_detached,
    stop_process,
    tail,
    wait_until,
)
from infra.stack.state import Component, StackConfig

CONTROLLER_OFFSET = 100
READY_TIMEOUT_S = 300.0  # three cold JVMs on a loaded 2-core box
CLUSTER_JVM_OPTS = tuple("-Xmx512m" if o.startswith("-Xmx") else o for o in JVM_OPTS)

SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
advertised.listeners=PLAINTEXT://{host}:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={log_dirs}
num.partitions=4
auto.create.topics.enable=true
default.replication.factor={rf}
min.insync.replicas={min_isr}
unclean.leader.election.enable=false
offsets.topic.replication.factor={rf}
transaction.state.log.replication.factor={rf}
transaction.state.log.min.isr={min_isr}
share.coordinator.state.topic.replication.factor={rf}
share.coordinator.state.topic.min.isr={min_isr}
group.initial.rebalance.delay.ms=0
delete.topic.enable=true
"""


def bootstrap(host: str, port: int, brokers: int) -> str:
    """Every broker's address: clients must not depend on the one that may be down."""
    return ",".join(f"{host}:{port + i}" for i in range(brokers))


def render(host: str, port: int, brokers: int, node: int, home: Path) -> Path:
    """``server.properties`` of node ``node`` (1-based) under ``home/node-<n>``."""
    voters = ",".join(f"{i + 1}@{host}:{port + CONTROLLER_OFFSET + i}" for i in range(brokers))
    node_home = home / f"node-{node}"
    node_home.mkdir(parents=True, exist_ok=True)
    conf = node_home / "server.properties"
    conf.write_text(
        SERVER_PROPERTIES.format(
            node_id=node,
            voters=voters,
            host=host,
            port=port + node - 1,
            controller_port=port + CONTROLLER_OFFSET + node - 1,
            log_dirs=node_home / "data",
            rf=min(3, brokers),
            min_isr=min(2, brokers),
        )
    )
    return conf


def start_cluster(
    cfg: StackConfig, java: str, libs: Path, brokers: int, say: Callable[[str], None]
) -> Component:
    """Format (first time) and start ``brokers`` nodes; wait until all answer."""
    home = cfg.data_dir / "kafka-cluster"
    classpath = f"{libs}/*"
    confs = [
        render(cfg.kafka_host, cfg.kafka_port, brokers, n, home) for n in range(1, brokers + 1)
    ]
    if not all((c.parent / "data" / "meta.properties").exists() for c in confs):
        cluster_id = _storage_tool(java, classpath, ["random-uuid"]).strip()
        say(f"kafka: formatting {brokers} nodes in {home} (cluster {cluster_id})")
        for conf in confs:
            _storage_tool(java, classpath, ["format", "-t", cluster_id, "-c", str(conf)])
    version = kafka_version(libs)
    nodes: list[ProcessId] = []
    for conf in confs:
        logs = conf.parent / "logs"
        argv = [
            java,
            *CLUSTER_JVM_OPTS,
            f"-Dkafka.logs.dir={logs}",
            f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.properties'}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(conf),
        ]
        nodes.append(spawn_detached(argv, logs / "kafka.out"))
    (home / "nodes.json").write_text(json.dumps([[p.pid, p.start_ticks] for p in nodes]))
    address = bootstrap(cfg.kafka_host, cfg.kafka_port, brokers)
    say(f"kafka: starting {brokers}-broker {version} cluster on {address} ...")
    every = [bootstrap(cfg.kafka_host, cfg.kafka_port + i, 1) for i in range(brokers)]
    ready = wait_until(
        lambda: all(p.alive() for p in nodes) and all(metadata_ok(b, 2.0) for b in every),
        READY_TIMEOUT_S,
        interval=1.0,
    )
    if not ready:
        detail = "\n".join(
            f"--- {c.parent}\n{tail(c.parent / 'logs' / 'kafka.out')}" for c in confs
        )
        stop_nodes(home)
        raise KafkaUnavailable(f"{brokers}-broker cluster did not become ready:\n{detail}")
    return Component(
        "kafka",
        "apache-kafka-cluster",
        address,
        f"{version} x{brokers}",
        True,
        nodes[0],
        stop_command=[sys.executable, "-m", "infra.stack.kafka_cluster", "stop", str(home)],
        log=str(home),
        notes=[f"{brokers} KRaft nodes, replication {min(3, brokers)}, min ISR {min(2, brokers)}"],
    )


def stop_nodes(home: Path, grace_s: float = STOP_GRACE_S) -> list[str]:
    """Stop every node recorded in ``home/nodes.json`` (SIGTERM, then SIGKILL after
    ``grace_s``: a throwaway test cluster need not wait out a shutdown that has lost its
    controller quorum)."""
    try:
        recorded = json.loads((home / "nodes.json").read_text())
    except FileNotFoundError:
        return []
    # In parallel: a broker's controlled shutdown waits for its peers, so one at a time the
    # last ones waited out their timeouts (47 s for three in the cluster test's teardown).
    with ThreadPoolExecutor(max_workers=max(1, len(recorded))) as pool:
        return list(
            pool.map(
                lambda rec: stop_process(ProcessId(rec[0], rec[1]), signal.SIGTERM, grace_s),
                recorded,
            )
        )


if __name__ == "__main__":  # the recorded stop_command
    if len(sys.argv) != 3 or sys.argv[1] != "stop":
        sys.exit("usage: python -m infra.stack.kafka_cluster stop <cluster home>")
    outcomes = stop_nodes(Path(sys.argv[2]))
    print(", ".join(outcomes) or "nothing recorded")
    sys.exit(1 if any(o.startswith("stop failed") for o in outcomes) else 0)
