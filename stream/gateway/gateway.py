"""The ingest gateway: MQTT (QoS 1, shared subscription) in, Kafka out, at least once.

Threads and why:

* paho's network thread runs :meth:`Gateway._on_message`: decode, validate, stamp
  ``ingest_time`` and hand the records to librdkafka (a non-blocking enqueue). No asyncio
  hop per message: at 5,000 events/s those hops would cost more than the work itself.
* one poll thread serves librdkafka's delivery callbacks, and only when Kafka has confirmed
  every record of a message (a batch carries many, see :mod:`schemas.batch`) does it send
  the MQTT PUBACK (paho ``manual_ack``). A crash before that leaves the message
  unacknowledged in the broker's persistent session, so it is redelivered whole, never
  lost; consumers deduplicate by event id.

A PUBACK is only valid on the connection that received the message: after a reconnect the
broker resends unacknowledged messages itself, so confirmations of messages from an earlier
connection are not acknowledged (see ``_Pending.generation``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import paho.mqtt.client as mqtt
from confluent_kafka import KafkaError, KafkaException, Message
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from core.mqtt_client import make_mqtt_client
from core.observability import Health, ObservabilityServer
from core.settings import Settings
from schemas.registry import EVENT_MODELS
from schemas.topics import KafkaTopic, MqttStream, mqtt_catch_all, mqtt_subscription
from stream.deadletter import Record
from stream.gateway.config import GatewayConfig
from stream.gateway.kafka import ensure_topics, new_producer
from stream.gateway.metrics import GatewayMetrics
from stream.gateway.retries import RetryQueue
from stream.gateway.routing import is_command_topic, route

log = logging.getLogger(__name__)

#: Streams devices publish on; CMD flows the other way (platform -> device).
INGEST_STREAMS: tuple[MqttStream, ...] = tuple(s for s in MqttStream if s is not MqttStream.CMD)
#: Kafka topics the gateway writes: every event model's topic plus the dead-letter topic.
OUTPUT_TOPICS: tuple[KafkaTopic, ...] = tuple(
    sorted({m.kafka_topic for m in EVENT_MODELS} | {KafkaTopic.DEAD_LETTER})
)
#: Wait before re-producing a record whose delivery failed (Kafka down, leader moving).
RETRY_DELAY_S = 1.0
#: At most one "delivery failed" log line this often (an outage fails thousands at once).
FAILURE_LOG_EVERY_S = 10.0
#: Without a delivery for this long, probe Kafka's metadata to keep the health verdict fresh.
KAFKA_PROBE_EVERY_S = 5.0
#: Longest wait between MQTT reconnect attempts. Devices retry within 1-5 s after a broker
#: restart; a gateway backing off to paho's 30 s left them publishing into a broker with no
#: subscriber (PUBACK 0x10) for up to half a minute.
RECONNECT_MAX_S = 2


@dataclass(slots=True)
class _Pending:
    """One MQTT message whose records Kafka has not all confirmed yet."""

    mid: int
    qos: int
    generation: int
    received: float  # monotonic
    remaining: int  # records of this message not yet confirmed (guarded by Gateway._lock)


class Gateway:
    """One gateway instance with a start/stop lifecycle (used by the CLI and by tests)."""

    def __init__(
        self, settings: Settings, config: GatewayConfig, metrics: GatewayMetrics | None = None
    ) -> None:
        self.settings = settings
        self.config = config
        self.metrics = metrics or GatewayMetrics()
        self._topics = {t: settings.kafka_topic(t) for t in OUTPUT_TOPICS}
        self._stop = threading.Event()
        self._draining = False
        self._subscribed = threading.Event()
        self._connected = False
        self._generation = 0
        self._lock = threading.Lock()
        self._in_flight = 0
        self._retries: RetryQueue[tuple[Record, _Pending]] = RetryQueue(RETRY_DELAY_S)
        self._kafka_ok = False
        self._fatal = False
        self._last_failure_log = 0.0
        self._last_kafka_ok = 0.0
        self._producer: Any = None
        self._poller: threading.Thread | None = None
        self._client = self._new_mqtt_client()
        self._http: ObservabilityServer | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Create Kafka topics (waiting for Kafka), then connect to MQTT in the background.

        Blocks only until Kafka answers; MQTT (re)connection is retried by paho's thread.
        """
        if self.config.metrics_port is not None:
            self._http = ObservabilityServer(
                self.config.metrics_port, self.health, self.metrics.registry
            ).start()
        s = self.settings
        kafka = s.kafka_client_settings()
        ensure_topics(kafka, self._topics.values(), self.config.partitions, stop=self._stop)
        self._producer = new_producer(kafka, self.config.client_id, error_cb=self._on_kafka_error)
        self._mark_kafka(True)
        self._poller = threading.Thread(
            target=self._poll_loop, name="gateway-kafka-poll", daemon=True
        )
        self._poller.start()
        self._client.connect_async(
            s.mqtt_host,
            s.mqtt_port,
            self.config.keepalive_s,
            clean_start=False,
            properties=self._connect_properties(),
        )
        self._client.loop_start()
        log.info(
            "gateway %s: MQTT %s:%d -> Kafka %s (namespace %s)",
            self.config.client_id,
            s.mqtt_host,
            s.mqtt_port,
            s.kafka_bootstrap,
            s.topic_namespace or "-",
        )

    def wait_subscribed(self, timeout: float) -> bool:
        """True once subscribed to every ingest stream (for tests and readiness)."""
        return self._subscribed.wait(timeout)

    def request_stop(self) -> None:
        """Ask a blocked :meth:`start` to give up (safe from a signal handler)."""
        self._stop.set()

    def stop(self, timeout: float = 15.0) -> None:
        """Drain: stop taking messages, confirm what is in flight, ack it, disconnect.

        Messages arriving while draining are left unacknowledged on purpose: the broker
        keeps them in the session and redelivers them, so stopping never drops anything.
        """
        self._draining = True
        self._stop.set()
        deadline = time.monotonic() + timeout
        if self._producer is not None:
            while self.in_flight and time.monotonic() < deadline:
                self._producer.flush(0.2)
                self._retry_due(force=True)
            if self.in_flight:
                log.warning(
                    "stopping with %d messages unconfirmed by Kafka; the broker "
                    "will redeliver them",
                    self.in_flight,
                )
        self._client.disconnect()
        self._client.loop_stop()
        if self._poller is not None:
            self._poller.join(timeout=5)
        if self._http is not None:
            self._http.stop()
        self.metrics.mqtt_connected.set(0)
        log.info("gateway %s stopped", self.config.client_id)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def health(self) -> Health:
        """Healthy when connected and subscribed to MQTT and Kafka is reachable."""
        mqtt_ok = self._connected and self._subscribed.is_set()
        return Health(
            mqtt_ok and self._kafka_ok,
            {
                "mqtt": "connected" if mqtt_ok else "disconnected",
                "kafka": "ok" if self._kafka_ok else "unreachable",
                "in_flight": self.in_flight,
                "client_id": self.config.client_id,
            },
        )

    # ----------------------------------------------------------------- MQTT side
    def _new_mqtt_client(self) -> mqtt.Client:
        client = make_mqtt_client(
            self.settings.mqtt_client_settings(), self.config.client_id, manual_ack=True
        )
        client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_S)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = self.config.receive_maximum
        return props

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error("MQTT broker refused the connection: %s", reason)
            return
        with self._lock:
            self._generation += 1
        self._connected = True
        self.metrics.mqtt_connected.set(1)
        log.info("MQTT connected (session %s)", "resumed" if flags.session_present else "new")
        group, site = self.config.share_group, self.config.site
        if flags.session_present:  # a session from before the catch-all: drop its filters
            client.unsubscribe([mqtt_subscription(s, group, site) for s in INGEST_STREAMS])
        # Subscribe on every connect, resumed session or not: Mosquitto 2.0 restores a
        # persistent session after a restart without its $share subscriptions.
        client.subscribe(mqtt_catch_all(group, site), options=SubscribeOptions(qos=1))

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _mid: int,
        codes: list[ReasonCode],
        _props: Properties | None,
    ) -> None:
        refused = [str(c) for c in codes if c.is_failure]
        if refused:
            log.error("MQTT broker refused subscriptions: %s", ", ".join(refused))
            return
        self._subscribed.set()

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        s = self.settings
        log.warning("MQTT broker at %s:%d unreachable; retrying", s.mqtt_host, s.mqtt_port)

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        self._connected = False
        self._subscribed.clear()
        self.metrics.mqtt_connected.set(0)
        if not self._draining:
            log.warning("MQTT connection lost (%s); reconnecting", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._draining:
            return  # unacknowledged: redelivered from the session after restart
        received = time.monotonic()
        self.metrics.messages.inc()
        try:
            self._handle(msg, received)
        except Exception:  # a bug here must not kill paho's network thread
            # Left unacknowledged, so the broker redelivers it after the next reconnect.
            log.exception("internal error handling MQTT message mid=%s", msg.mid)
            self.metrics.produce_errors.labels("internal").inc()

    def _handle(self, msg: mqtt.MQTTMessage, received: float) -> None:
        try:
            topic: str | bytes = msg.topic
        except UnicodeDecodeError:  # paho decodes lazily; keep the raw bytes for the DLQ
            topic = bytes(getattr(msg, "_topic", b""))
        if isinstance(topic, str) and is_command_topic(topic):
            self.metrics.commands_skipped.inc()  # the platform's own commands to devices
            if msg.qos:
                self._client.ack(msg.mid, msg.qos)
            return
        records = route(topic, bytes(msg.payload), datetime.now(UTC), self.config.known_sites)
        n = len(records)
        self.metrics.received.inc(sum(r.events for r in records))
        pending = _Pending(msg.mid, msg.qos, self._generation, received, n)
        with self._lock:
            self._in_flight += n
        self.metrics.in_flight.inc(n)
        for record in records:  # in payload order: one key (the site) keeps it in Kafka
            self._produce(record, pending)

    def _ack(self, pending: _Pending) -> None:
        if pending.qos == 0 or pending.generation != self._generation or not self._connected:
            return  # QoS 0 needs none; an older connection's messages are resent by the broker
        self._client.ack(pending.mid, pending.qos)

    # ----------------------------------------------------------------- Kafka side
    def _produce(self, record: Record, pending: _Pending) -> None:
        on_delivery = partial(self._on_delivery, record, pending)
        while True:
            try:
                self._producer.produce(
                    self._topics[record.topic], record.value, record.key, on_delivery=on_delivery
                )
                return
            except BufferError:  # librdkafka's queue is full: serve callbacks, then retry
                self._producer.poll(0.05)
            except KafkaException as exc:
                self._delivery_failed(record, pending, exc.args[0] if exc.args else None)
                return

    def _on_delivery(
        self, record: Record, pending: _Pending, err: KafkaError | None, _msg: Message
    ) -> None:
        if err is not None:
            self._delivery_failed(record, pending, err)
            return
        with self._lock:
            self._in_flight -= 1
            pending.remaining -= 1
            complete = pending.remaining == 0
        self.metrics.in_flight.dec()
        if record.reason is None:
            self.metrics.forwarded.inc(record.events)
        else:
            self.metrics.dead(record.reason).inc()
        self._mark_kafka(True)
        if complete:  # the whole message is in Kafka: only now may the broker forget it
            self.metrics.latency.observe(time.monotonic() - pending.received)
            self._ack(pending)

    def _delivery_failed(self, record: Record, pending: _Pending, err: Any) -> None:
        name = err.name() if isinstance(err, KafkaError) else type(err).__name__
        self.metrics.produce_errors.labels(name).inc()
        now = time.monotonic()
        if now - self._last_failure_log > FAILURE_LOG_EVERY_S:  # one line, not one per event
            self._last_failure_log = now
            log.warning(
                "Kafka delivery to %s failed (%s); retrying every %.0f s",
                self._topics[record.topic],
                err,
                RETRY_DELAY_S,
            )
        self._retries.add((record, pending))

    def _retry_due(self, force: bool = False) -> None:
        for record, pending in self._retries.due(force):
            self._produce(record, pending)

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)
            self._retry_due()
            if time.monotonic() - self._last_kafka_ok > KAFKA_PROBE_EVERY_S:
                self._probe_kafka()

    def _probe_kafka(self) -> None:
        """Metadata of one of its own topics: all topics' would cost 60-100 ms of the GIL
        on a 4,000-topic cluster every probe, stalling paho's thread meanwhile."""
        try:
            self._producer.list_topics(min(self._topics.values()), timeout=2.0)
        except KafkaException:
            self._mark_kafka(False)
            return
        self._mark_kafka(True)

    def _mark_kafka(self, ok: bool) -> None:
        ok = ok and not self._fatal
        if ok:
            self._last_kafka_ok = time.monotonic()
        if ok != self._kafka_ok:
            self._kafka_ok = ok
            self.metrics.kafka_ok.set(1 if ok else 0)
            if ok:
                log.info("Kafka reachable at %s", self.settings.kafka_bootstrap)
            else:
                log.warning("Kafka unreachable at %s", self.settings.kafka_bootstrap)

    def _on_kafka_error(self, err: KafkaError) -> None:
        if err.fatal():
            # The idempotent producer cannot continue; nothing more will be acknowledged,
            # so MQTT keeps every message. Health goes red for the orchestrator to restart us.
            self._fatal = True
            self._mark_kafka(False)
            log.error("Kafka producer failed fatally: %s; restart the gateway", err)
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._mark_kafka(False)
        else:
            log.warning("Kafka: %s", err)
