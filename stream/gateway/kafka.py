"""Kafka side of the gateway: producer settings and topic creation.

The producer is librdkafka (confluent-kafka): thread-safe, batching in C, so paho's network
thread can hand each record over in microseconds. ``acks=all`` plus idempotence means a
record confirmed by the delivery callback is durably in Kafka exactly once per produce
call, and only then does the gateway acknowledge the MQTT message.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from core.kafka_client import KafkaClientSettings, as_kafka

log = logging.getLogger(__name__)

#: Seconds to wait for one admin request; the caller retries with backoff on failure.
ADMIN_TIMEOUT_S = 10.0
#: Backoff between attempts to reach Kafka at start-up: starts small, capped.
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 15.0


def producer_config(bootstrap: str | KafkaClientSettings, client_id: str) -> dict[str, Any]:
    """librdkafka settings tuned for many small events with at-least-once delivery.

    Connection, security (SASL/TLS) and acks=all + idempotence (retries never duplicate
    or reorder within a partition) come from the shared :class:`KafkaClientSettings`.
    """
    return as_kafka(bootstrap).librdkafka_producer(
        **{
            "client.id": client_id,
            "linger.ms": 5,  # a few ms of batching buys an order of magnitude in throughput
            "compression.type": "lz4",
            "batch.num.messages": 10000,
            # Give up on one produce attempt after 2 min; the gateway then re-produces it, so
            # a long Kafka outage never loses the (still unacknowledged) MQTT message.
            "message.timeout.ms": 120_000,
            "socket.connection.setup.timeout.ms": 10_000,
            "reconnect.backoff.max.ms": 10_000,
            "log_level": 4,  # warnings and worse from librdkafka itself
        }
    )


def ensure_topics(
    bootstrap: str | KafkaClientSettings,
    names: Iterable[str],
    partitions: int,
    replication: int | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Create missing topics, retrying with backoff until Kafka answers or ``stop`` is set.

    ``replication`` None: up to 3 copies, as many as the cluster has brokers (like the
    workers' topics). A fixed 1 gave a topic the gateway created first one copy on a
    3-broker cluster: the chaos run ``kafka_leader_kill`` then stalled 2,235 of 3,000
    acknowledged events with their only broker.

    Existing topics are left alone (their partition count is the operator's decision).
    Raises ``KafkaException`` only for errors retrying cannot fix (e.g. an invalid name).
    """
    wanted = sorted(set(names))
    admin = AdminClient(
        as_kafka(bootstrap).librdkafka(
            **{"log_level": 3, "socket.connection.setup.timeout.ms": 5000}
        )
    )
    waiter = stop or threading.Event()
    delay = BACKOFF_START_S
    while True:
        try:
            _create(admin, wanted, partitions, replication)
            return
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and not err.retriable() and not _is_transport(err):
                raise
            log.warning("Kafka at %s not ready (%s); retrying in %.1f s", bootstrap, exc, delay)
        if waiter.wait(delay):
            raise KafkaException(KafkaError(KafkaError._DESTROY, "stopped while waiting"))
        delay = min(delay * 2, BACKOFF_MAX_S)


def _create(admin: AdminClient, names: list[str], partitions: int, replication: int | None) -> None:
    cluster = admin.list_topics(timeout=ADMIN_TIMEOUT_S)
    missing = [n for n in names if n not in set(cluster.topics)]
    if not missing:
        return
    if replication is None:
        replication = min(3, len(cluster.brokers))
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=replication) for n in missing],
        request_timeout=ADMIN_TIMEOUT_S,
    )
    for name, fut in futures.items():
        try:
            fut.result()
            log.info("created Kafka topic %s (%d partitions)", name, partitions)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # another gateway won the race: fine
            raise


def _is_transport(err: KafkaError) -> bool:
    return err.code() in (
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError._RESOLVE,
    )


def new_producer(
    bootstrap: str | KafkaClientSettings, client_id: str, **callbacks: Any
) -> Producer:
    """A producer; ``callbacks`` are librdkafka callbacks such as ``error_cb``."""
    return Producer({**producer_config(bootstrap, client_id), **callbacks})
