"""The 3-broker KRaft cluster (``stack up --kafka-brokers 3``) loses nothing when the
partition leader is killed mid-production.

Real cluster, private ports (22392-22394, controllers 22492-22494), the gateway's own
producer settings (``acks=all`` + idempotence). A consumer reads throughout; the leader
of the partition gets ``kill -9`` after a third of the records were acknowledged. Every
acknowledged record must reach the consumer, which must keep going by itself.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from infra.stack.kafka import ensure_kafka
from infra.stack.kafka_cluster import stop_nodes
from infra.stack.state import StackConfig
from stream.gateway.kafka import ensure_topics, producer_config

pytestmark = pytest.mark.slow

PORT = 22392
RECORDS = 15_000
TOPIC = "cluster-test"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> object:
    if shutil.which("java") is None:
        pytest.skip("java is not installed (default-jdk-headless)")
    libs = os.environ.get("TP_KAFKA_LIBS")
    repo_libs = Path(__file__).resolve().parents[2] / ".tourpulse" / "kafka" / "libs"
    data = tmp_path_factory.mktemp("kafka-cluster")
    cfg = StackConfig(
        data_dir=data,
        kafka_port=PORT,
        kafka_brokers=3,
        kafka_libs=Path(libs) if libs else repo_libs,
    )
    comp = ensure_kafka(cfg, print)
    try:
        yield cfg, comp
    finally:
        stop_nodes(data / "kafka-cluster", grace_s=10)  # throwaway data: no long wait


def _leader_pid(admin: AdminClient, home: Path) -> tuple[int, int]:
    """(node id, pid) of partition 0's leader."""
    leader = admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions[0].leader
    pids = json.loads((home / "nodes.json").read_text())
    return leader, int(pids[leader - 1][0])


def test_gateway_creates_its_topics_with_three_copies(cluster: tuple[StackConfig, object]) -> None:
    """Measured before: the gateway created its topics with one copy (replication fixed at
    1), so when it won the race with the workers, killing that one broker stalled them."""
    cfg, _ = cluster
    ensure_topics(cfg.kafka_bootstrap, ["gateway-made"], partitions=2)
    admin = AdminClient({"bootstrap.servers": cfg.kafka_bootstrap})
    deadline = time.monotonic() + 30
    while True:  # a new topic's partitions reach every broker's metadata a moment later
        meta = admin.list_topics("gateway-made", timeout=10)
        if meta.topics["gateway-made"].partitions or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    live = len(meta.brokers)  # 2 if the leader-kill test ran first (one node is dead)
    assert live >= 2
    assert [len(p.replicas) for p in meta.topics["gateway-made"].partitions.values()] == [
        min(3, live)
    ] * 2


def test_leader_killed_mid_production_loses_nothing(cluster: tuple[StackConfig, object]) -> None:
    cfg, _ = cluster
    bootstrap = cfg.kafka_bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(TOPIC, 1, replication_factor=3)]).values():
        fut.result()
    deadline = time.monotonic() + 30
    isr: list[int] = []
    while len(isr) < 3 and time.monotonic() < deadline:  # metadata reaches brokers a moment later
        partitions = admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
        isr = partitions[0].isrs if 0 in partitions else []
        time.sleep(0.1)
    assert len(isr) == 3

    received: set[int] = set()
    stop = threading.Event()

    def consume() -> None:
        consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "cluster-test", "log_level": 0}
        )
        consumer.assign([TopicPartition(TOPIC, 0, 0)])
        while not stop.is_set():
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is None:
                received.add(int(msg.value() or b"-1"))
            elif error.code() != KafkaError._PARTITION_EOF:
                print("consumer:", error)
        consumer.close()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()

    acked: set[int] = set()
    failed: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is None:
            acked.add(int(msg.value() or b"-1"))
        else:
            failed.append(str(err))

    producer = Producer({**producer_config(bootstrap, "cluster-test"), "log_level": 0})
    killed: int | None = None
    for i in range(RECORDS):
        while True:
            try:
                producer.produce(TOPIC, str(i).encode(), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        if i == RECORDS // 3:
            # Kill once a quarter is acknowledged while the rest of this third is still in
            # flight and two thirds are yet to be produced: the kill lands mid-production.
            while len(acked) < RECORDS // 4:
                producer.poll(0.05)
            killed, pid = _leader_pid(admin, cfg.data_dir / "kafka-cluster")
            os.kill(pid, signal.SIGKILL)
            print(f"killed leader node {killed} (pid {pid}) after {len(acked)} acks")
    assert producer.flush(120) == 0
    assert killed is not None, "the leader was never killed: production ended too early"

    new_leader = admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions[0].leader
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not acked <= received:
        time.sleep(0.5)
    stop.set()
    reader.join(10)
    lost = acked - received
    print(f"acked {len(acked)}, failed {len(failed)}, received {len(received)}, lost {len(lost)}")
    assert new_leader != killed
    assert not failed, failed[:3]  # idempotent acks=all: retried to the new leader
    assert len(acked) == RECORDS
    assert not lost, sorted(lost)[:10]
