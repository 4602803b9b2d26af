"""Prometheus metrics of one gateway instance.

Each gateway owns a :class:`CollectorRegistry` rather than using the global one, so several
gateways can run in one process (tests, the load-sharing demo) without name clashes.
Label children are resolved once up front: ``labels()`` on every message would cost a
dict lookup and a lock per event on the hot path.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.codec import DeadLetterReason

#: Receive-to-Kafka-ack latency buckets (seconds): linger is ~5 ms, so most land below 50 ms.
_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class GatewayMetrics:
    """Counters the gateway moves; read them in tests via :meth:`value`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "tp_gateway_messages", "MQTT messages received (one may carry a batch)", registry=r
        )
        self.received = Counter(
            "tp_gateway_received",
            "Events received: batch elements, or 1 per message that is not a batch",
            registry=r,
        )
        self.forwarded = Counter(
            "tp_gateway_forwarded", "Valid events confirmed by Kafka", registry=r
        )
        self.dead_lettered = Counter(
            "tp_gateway_dead_lettered",
            "Messages confirmed in the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.commands_skipped = Counter(
            "tp_gateway_commands_skipped",
            "Platform-to-device commands seen on the catch-all subscription (not ingested)",
            registry=r,
        )
        self.produce_errors = Counter(
            "tp_gateway_produce_errors",
            "Kafka produce or delivery failures (retried)",
            ["error"],
            registry=r,
        )
        self.in_flight = Gauge(
            "tp_gateway_in_flight", "Records received but not yet confirmed by Kafka", registry=r
        )
        self.latency = Histogram(
            "tp_gateway_latency_seconds",
            "MQTT receive to Kafka confirmation of the message's last record",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.mqtt_connected = Gauge(
            "tp_gateway_mqtt_connected", "1 while connected to the MQTT broker", registry=r
        )
        self.kafka_ok = Gauge(
            "tp_gateway_kafka_ok", "1 while the Kafka producer reaches a broker", registry=r
        )
        self._dead = {r.value: self.dead_lettered.labels(r.value) for r in DeadLetterReason}

    def dead(self, reason: str) -> Counter:
        """The dead-letter counter child for ``reason`` (pre-resolved for known reasons)."""
        child = self._dead.get(reason)
        return child if child is not None else self.dead_lettered.labels(reason)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of a sample, 0.0 when it has not been observed yet."""
        got = self.registry.get_sample_value(name, labels or {})
        return got if got is not None else 0.0
