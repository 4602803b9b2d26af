"""One simulated site's MQTT link, and the options and counters of a simulator run.

Split from :mod:`edge.simulator.publisher` (which drives every site's link from one thread)
so each module stays about one thing: here, what a single site's connection does with a
message (batching, TCP corking, re-sending what the broker did not deliver).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.mqtt_client import MqttClientSettings, make_mqtt_client
from edge.link.publisher import RETRY_MAX_S, RETRY_MIN_S, RETRY_REASONS
from edge.simulator.generator import edge_device_id
from schemas.batch import join_batch
from schemas.topics import DeviceKind, MqttStream, MqttTopic

log = logging.getLogger(__name__)

_TCP_CORK: int | None = getattr(socket, "TCP_CORK", None)  # Linux only; elsewhere: no batching


@dataclass(frozen=True)
class PublishOptions:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    speed: float | None = 1.0  # simulated seconds per wall second; None = as fast as possible
    rate: float | None = None  # cap on session events per wall second
    max_events: int | None = None  # stop after this many session events
    duration_s: float | None = None  # stop after this many wall seconds
    window: int = 2000  # unacknowledged QoS 1 messages across all connections
    batch: int = 100  # most session events in one MQTT message (1: no batching)
    linger_s: float = 0.05  # longest a session event waits for more of its device's
    progress_s: float = 5.0
    connect_timeout_s: float = 15.0

    def client_settings(self) -> MqttClientSettings:
        """Broker, identity and TLS for the one MQTT client factory."""
        return MqttClientSettings.model_validate(
            {
                "host": self.host,
                "port": self.port,
                "username": self.username,
                "password": self.password,
                "tls_ca": self.tls_ca,
            }
        )


@dataclass
class PublishStats:
    """What a run did; ``acked`` counts PUBACKs for every message, heartbeats included."""

    sent: int = 0  # session events accepted (sent or waiting in a batch)
    batches: int = 0  # MQTT messages carrying session events
    heartbeats: int = 0
    published: int = 0  # every message handed to paho: events, heartbeats, availability
    acked: int = 0
    failed: int = 0
    #: PUBACKs saying "not delivered" (0x10 no subscriber after a broker restart, busy):
    #: those messages are published again after a back-off, so ``acked`` stays honest.
    not_delivered: int = 0
    started: float = field(default_factory=time.monotonic)
    sim_time: datetime | None = None

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


class SiteLink:
    """The MQTT connection of one site's (simulated) edge agent.

    No paho network thread: :class:`SimPublisher` drives all links from its own thread
    (``loop_read``/``loop_write``/``loop_misc``). With 20 threads every publish had to wake
    one through a socket pair and hand over the GIL, which capped a run at ~1,000 events/s.
    """

    def __init__(self, site: str, opts: PublishOptions, stats: PublishStats) -> None:
        self.site = site
        self.device = edge_device_id(site)
        self._stats = stats
        self.connected = False
        self.corked = False
        self._topics: dict[MqttStream, str] = {}
        self._batch: list[bytes] = []
        self._last_batch = float("-inf")  # monotonic time the last session message left
        self.refused: str | None = None
        #: In-memory copy of each unacknowledged message (mid -> topic, payload, retain),
        #: bounded by the in-flight window, to re-send what the broker did not deliver.
        #: Not durable: a killed simulator loses what it held (it is no edge agent).
        self._unacked: dict[int, tuple[str, bytes, bool]] = {}
        self._resend: list[tuple[str, bytes, bool]] = []
        self._resend_at = 0.0
        self._backoff = RETRY_MIN_S
        self.client = make_mqtt_client(
            opts.client_settings(), f"tp-sim-{self.device}-{os.getpid()}"
        )
        self.client.max_inflight_messages_set(opts.window)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = self._on_disconnect

    def topic(self, stream: MqttStream) -> str:
        topic = self._topics.get(stream)
        if topic is None:
            topic = str(MqttTopic.build(self.site, DeviceKind.WIFI, self.device, stream))
            self._topics[stream] = topic
        return topic

    def connect(self, opts: PublishOptions, will: bytes) -> None:
        self.client.will_set(self.topic(MqttStream.AVAILABILITY), will, qos=1, retain=True)
        self.client.connect(opts.host, opts.port, keepalive=30)

    def publish(self, stream: MqttStream, payload: bytes, retain: bool = False) -> None:
        # Only events are worth re-sending: a heartbeat is telemetry (the next one
        # supersedes it) and a retained availability is kept by the broker regardless.
        self._send(self.topic(stream), payload, retain, durable=stream is MqttStream.SESSION)

    def _send(self, topic: str, payload: bytes, retain: bool, durable: bool = True) -> None:
        self._stats.published += 1
        self._cork()
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if durable:
            self._unacked[info.mid] = (topic, payload, retain)

    @property
    def waiting(self) -> int:
        """Messages the broker did not deliver, waiting for their re-send."""
        return len(self._resend)

    def resend_due(self, now: float) -> None:
        """Publish again what the broker acknowledged without delivering, once backed off."""
        if self._resend and now >= self._resend_at and self.connected:
            again, self._resend = self._resend, []
            for topic, payload, retain in again:
                self._send(topic, payload, retain)

    def add_session(self, payload: bytes, now: float, opts: PublishOptions) -> None:
        """Queue one session event; send the batch when full or the device was quiet."""
        self._batch.append(payload)
        if len(self._batch) >= opts.batch or now - self._last_batch >= opts.linger_s:
            self.send_batch(now)

    def batch_due(self, now: float, linger_s: float) -> float | None:
        """Seconds until the waiting batch must go (<= 0: now), None when nothing waits."""
        return self._last_batch + linger_s - now if self._batch else None

    def send_batch(self, now: float) -> None:
        if self._batch:
            self.publish(MqttStream.SESSION, join_batch(self._batch))
            self._stats.batches += 1
            self._batch = []
            self._last_batch = now

    def _cork(self) -> None:
        """Hold small writes in the kernel until :meth:`flush` (Linux ``TCP_CORK``).

        paho makes one ``send`` per message; on loopback each one runs the broker's side of
        TCP synchronously. Corked, a burst of publishes leaves as a few full segments: the
        same bytes on the wire, a fraction of the CPU on both ends.
        """
        sock = self.client.socket()
        if not self.corked and _TCP_CORK is not None and isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_CORK, 1)
            self.corked = True

    def flush(self) -> None:
        sock = self.client.socket()
        if self.corked and _TCP_CORK is not None and isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_CORK, 0)
        self.corked = False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_write()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.refused = str(reason)
        else:
            self.connected = True

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        message = self._unacked.pop(mid, None)
        if reason.value in RETRY_REASONS and message is not None:
            self._stats.not_delivered += 1
            if not self._resend:
                self._resend_at = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, RETRY_MAX_S)
            self._resend.append(message)
        elif not self._resend:
            self._backoff = RETRY_MIN_S
        if reason.is_failure:
            self._stats.failed += 1
            log.warning("%s: broker rejected a message: %s", self.device, reason)
        self._stats.acked += 1

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected = False
        if reason.is_failure:
            log.warning("%s: disconnected (%s); reconnecting", self.device, reason)
