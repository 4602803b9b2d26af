"""Store-and-forward MQTT 5 publisher for any edge agent (Wi-Fi, cameras, portal).

Usage::

    link = MqttLink(cfg, LinkIdentity("ben-thanh-market", "btm-wifi", DeviceKind.WIFI))
    link.start()
    link.submit(event)          # any EventBase: durable in the outbox once this returns
    ...
    link.stop()

Design (why): one thread owns the paho client and drives ``client.loop()`` itself, so
publishing, PUBACK handling and reconnecting never race. Each connection uses a *fresh*
client with a clean start: un-acked rows are simply re-read from the outbox in sequence
order after CONNACK, so the backlog is replayed in order before live events (which are just
later rows). A PUBACK lost in an outage means a re-send; consumers dedup on the event id.

Batching (why): per-message costs (a packet and a PUBACK, paho and broker routing, a gateway
callback) dwarf one small event, so rows of one device's topic leave together as one batch
message (:mod:`edge.link.batches` says when). A batch is one unit for the outbox: a PUBACK
deletes all its rows, a "not delivered" reason code keeps all of them for the re-send.

Availability: the Last Will is ``AvailabilityV1(offline, reason="last-will")``, retained;
"online" is published only from the CONNACK-success path, never on a refused connection.
Heartbeats and availability are telemetry: published directly, not through the outbox.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from core.mqtt_client import make_mqtt_client
from edge.link import telemetry
from edge.link.acks import PendingAcks
from edge.link.batches import PendingBatches
from edge.link.config import LinkIdentity, MqttLinkConfig
from edge.link.metrics import (
    BATCHES,
    CONNECTED,
    LINK_ERRORS,
    NOT_DELIVERED,
    OUTBOX_DEPTH,
    OUTBOX_DROPPED,
    OUTBOX_OLDEST,
)
from edge.link.outbox import Outbox
from schemas.batch import join_batch
from schemas.codec import encode_event
from schemas.envelope import EventBase
from schemas.topics import MqttStream, MqttTopic

log = logging.getLogger(__name__)

#: Source statistics an agent reports in heartbeats: (rates per second, error counts).
StatsProvider = Callable[[], tuple[dict[str, float], dict[str, int]]]

#: Errors a connection attempt can raise before CONNACK (refused, unreachable, TLS...).
CONNECT_ERRORS = (OSError, ssl.SSLError, ValueError)
#: How long to wait for CONNACK before giving up on an attempt; generous for loaded boxes.
CONNACK_TIMEOUT_S = 15.0
#: How often the outbox is checked for expired rows.
EXPIRE_EVERY_S = 10.0
#: PUBACK reason codes that mean "accepted on the wire but not passed on; the same message
#: can succeed later": 0x10 No matching subscribers (after a broker restart, until the
#: gateway has subscribed again the broker drops what it acknowledges with this code),
#: 0x80 Unspecified error, 0x89 Server busy, 0x97 Quota exceeded. Such events stay in the
#: outbox and are sent again after a back-off; every other failure is permanent.
RETRY_REASONS = frozenset({0x10, 0x80, 0x89, 0x97})
#: Back-off before re-sending events the broker did not deliver (doubles up to the max):
#: short, because a gateway re-subscribes within a second or two of a broker restart.
RETRY_MIN_S = 0.5
RETRY_MAX_S = 5.0
#: Acknowledged rows leave the outbox together, at most this late or this many (see acks).
ACK_FLUSH_S = 0.05
ACK_FLUSH_ROWS = 2000


class MqttLink:
    """Durable uplink of one edge agent; thread-safe ``submit`` from any thread."""

    def __init__(
        self,
        cfg: MqttLinkConfig,
        identity: LinkIdentity,
        *,
        stats: StatsProvider | None = None,
        software: str = "tourpulse-edge",
    ) -> None:
        self.cfg = cfg
        self.identity = identity
        self.outbox = Outbox(
            cfg.outbox_path,
            max_events=cfg.outbox_max_events,
            max_age_s=cfg.outbox_max_age_s,
            synchronous=cfg.outbox_synchronous,
        )
        self._stats = stats
        self._software = software
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._online = threading.Event()
        self._thread: threading.Thread | None = None
        self._inflight: dict[int, list[int]] = {}  # paho mid -> outbox seqs of its batch
        self._batches = PendingBatches(cfg.batch_max_events, cfg.batch_linger_s)
        self._acks = PendingAcks(self.outbox, ACK_FLUSH_S, ACK_FLUSH_ROWS)
        #: Set when the broker answered a PUBACK with a RETRY_REASONS code: sending pauses,
        #: in-flight acks drain, and after the back-off the outbox is re-read from its head.
        self._resend_at: float | None = None
        self._retry_backoff = RETRY_MIN_S
        self.not_delivered_total = 0
        self._window = cfg.max_inflight  # lowered to the broker's Receive Maximum on CONNACK
        self._conn_state: str = "idle"  # idle | connecting | up | down
        self._dropped_seen = 0
        self.errors: dict[str, int] = {}
        #: Event messages handed to paho (batches and single events).
        self.messages_total = 0
        self._topics: dict[tuple[object, ...], str] = {}

    # ----- public API ---------------------------------------------------------------
    def topic_for(self, event: EventBase) -> str:
        key = (event.site, event.device_kind, event.device, event.mqtt_stream)
        topic = self._topics.get(key)
        if topic is None:  # validated once per (site, device, stream), then a dict hit
            kind = event.device_kind or self.identity.kind
            topic = str(MqttTopic.build(event.site, kind, event.device, event.mqtt_stream))
            if len(self._topics) < 10_000:
                self._topics[key] = topic
        return topic

    def submit(self, event: EventBase) -> bool:
        """Write the event to the outbox (durable on return); the link thread publishes it.

        An event whose id was queued recently (a RADIUS retransmission after a restart of
        the agent) is not queued again: its first copy, with its first event time, stands.
        Returns whether it was queued.
        """
        return bool(self.submit_many([event]))

    def submit_many(self, events: Sequence[EventBase]) -> list[int]:
        return self.outbox.put_many(
            [(self.topic_for(e), encode_event(e)) for e in events], ids=[e.id for e in events]
        )

    @property
    def acked_total(self) -> int:
        """Events the broker acknowledged and the outbox deleted (this process)."""
        return self._acks.deleted_total

    @property
    def connected(self) -> bool:
        return self._online.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._online.wait(timeout)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Say "offline" (shutdown) to the broker, disconnect cleanly, close the outbox."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        self.outbox.close()

    # ----- link thread --------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            client = self._new_client()
            try:
                if self._connect(client):
                    backoff = 0.5
                    self._pump(client)
            except CONNECT_ERRORS as exc:
                self._error(f"connect_{type(exc).__name__}")
                log.warning("broker %s:%s unreachable: %s", self.cfg.host, self.cfg.port, exc)
            finally:
                self._online.clear()
                CONNECTED.set(0)
                self._inflight.clear()
                self._batches.clear()
                self._resend_at = None  # a new connection replays the outbox from its head
                client.disconnect()
                client.loop(timeout=0.01)  # lets paho close the socket
                self._acks.flush(force=True)  # before the replay reads the outbox again
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.cfg.reconnect_max_s)

    def _new_client(self) -> mqtt.Client:
        ident = self.identity
        client = make_mqtt_client(self.cfg.client_settings(), f"tp-{ident.site}-{ident.device}")
        will = telemetry.availability_message(self.identity, self._software, "last-will")
        client.will_set(*will, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.max_inflight_messages_set(self.cfg.max_inflight)
        return client

    def _connect(self, client: mqtt.Client) -> bool:
        self._conn_state = "connecting"
        self._window = self.cfg.max_inflight
        client.connect(self.cfg.host, self.cfg.port, self.cfg.keepalive_s, clean_start=True)
        deadline = time.monotonic() + CONNACK_TIMEOUT_S
        # stop() must not wait out a broker that never answers: its join would give up
        # first and close the outbox under this thread.
        while (
            self._conn_state == "connecting"
            and time.monotonic() < deadline
            and not self._stop.is_set()
        ):
            if client.loop(timeout=0.2) != mqtt.MQTT_ERR_SUCCESS:
                self._conn_state = "down"
        if self._conn_state != "up":
            if self._conn_state == "connecting" and not self._stop.is_set():
                self._error("connack_timeout")
            return False
        online = telemetry.availability_message(self.identity, self._software, None)
        client.publish(*online, qos=1, retain=True)
        self._online.set()
        CONNECTED.set(1)
        log.info(
            "connected to %s:%s; %d events queued",
            self.cfg.host,
            self.cfg.port,
            self.outbox.depth(),
        )
        return True

    def _pump(self, client: mqtt.Client) -> None:
        """Publish the outbox in order within the in-flight window until the link drops."""
        read_up_to = 0  # highest outbox seq read into the pending batches
        next_heartbeat = time.monotonic()
        next_expire = time.monotonic()
        while self._conn_state == "up":
            if self._stop.is_set():
                self._goodbye(client)
                return
            if self._resend_at is not None and not self._inflight:
                if time.monotonic() < self._resend_at:
                    client.loop(timeout=0.05)
                    self._acks.flush()
                    continue
                self._resend_at = None
                self._acks.flush(force=True)  # so acknowledged rows are not read again
                self._batches.clear()
                read_up_to = 0  # kept rows are the oldest: replay from the head, in order
            if self._resend_at is None:
                read_up_to = self._read(read_up_to)
                self._publish_due(client)
            busy = bool(self._inflight or self._batches.rows)
            if client.loop(timeout=0.005 if busy else 0.05) != mqtt.MQTT_ERR_SUCCESS:
                self._conn_state = "down"
            self._acks.flush()
            now = time.monotonic()
            if now >= next_expire:
                self.outbox.expire()
                next_expire = now + EXPIRE_EVERY_S
            if now >= next_heartbeat and self._conn_state == "up":
                self._publish_heartbeat(client)
                next_heartbeat = now + self.cfg.heartbeat_s
            self._update_gauges()
        log.warning("lost connection to %s:%s", self.cfg.host, self.cfg.port)

    def _read(self, after: int) -> int:
        """Move new outbox rows into their topic's pending batch; returns the last seq read.

        Bounded to a full in-flight window of full batches, so a long backlog is read as it
        drains instead of all at once.
        """
        room = self._window * self.cfg.batch_max_events - self._batches.rows
        if room <= 0:
            return after
        rows = self.outbox.peek(after=after, limit=room)
        self._batches.add(rows)
        return rows[-1].seq if rows else after

    def _publish_due(self, client: mqtt.Client) -> None:
        """Publish every topic's batch that is full or has lingered long enough."""
        now = time.monotonic()
        for topic in self._batches.topics():
            while len(self._inflight) < self._window:
                batch = self._batches.due(topic, now)
                if not batch:
                    break
                info = client.publish(topic, join_batch([r.payload for r in batch]), qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    return  # not queued by paho: the rows stay pending
                self._batches.sent(topic, len(batch), now)
                self._inflight[info.mid] = [r.seq for r in batch]
                self.messages_total += 1
                BATCHES.inc()

    def _goodbye(self, client: mqtt.Client) -> None:
        """Graceful stop: drain in-flight acks briefly, announce offline, disconnect."""
        deadline = time.monotonic() + 3.0
        while self._inflight and time.monotonic() < deadline:
            client.loop(timeout=0.05)
            self._acks.flush()
        offline = telemetry.availability_message(self.identity, self._software, "shutdown")
        info = client.publish(*offline, qos=1, retain=True)
        while not info.is_published() and time.monotonic() < deadline + 2.0:
            client.loop(timeout=0.05)
        client.disconnect()
        client.loop(timeout=0.1)
        self._conn_state = "down"

    def _update_gauges(self) -> None:
        OUTBOX_DEPTH.set(self.outbox.depth())
        dropped = self.outbox.dropped
        if dropped > self._dropped_seen:
            OUTBOX_DROPPED.inc(dropped - self._dropped_seen)
            self._dropped_seen = dropped

    def _publish_heartbeat(self, client: mqtt.Client) -> None:
        rates, errors = self._stats() if self._stats else ({}, {})
        oldest = self.outbox.oldest_age()
        OUTBOX_OLDEST.set(oldest or 0.0)
        errors = {**self.errors, **errors}
        uptime = time.monotonic() - self._started
        hb = telemetry.heartbeat(
            self.identity, self._software, uptime, self.outbox, oldest, rates, errors
        )
        client.publish(
            telemetry.topic(self.identity, MqttStream.HEARTBEAT), encode_event(hb), qos=0
        )

    # ----- paho callbacks (run inside client.loop on the link thread) ---------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        if rc.is_failure:
            self._error(f"connack_{_slug(rc.getName())}")
            log.error("broker refused the connection: %s", rc.getName())
            self._conn_state = "down"
            return
        receive_max = getattr(props, "ReceiveMaximum", None) if props else None
        if receive_max:
            self._window = min(self.cfg.max_inflight, int(receive_max))
        self._conn_state = "up"

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        self._conn_state = "down"

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, rc: ReasonCode, props: Properties
    ) -> None:
        seqs = self._inflight.pop(mid, None)
        if seqs is None:
            return  # availability / heartbeat
        if rc.value in RETRY_REASONS:
            # Not delivered although acknowledged: the batch's events stay in the outbox.
            # Acking them here lost every event sent between a broker restart and the
            # gateway's re-subscription (reason 0x10); now they are re-sent after a back-off.
            reason = f"puback_{_slug(rc.getName())}"
            NOT_DELIVERED.labels(reason=reason).inc()
            self.not_delivered_total += 1
            if self._resend_at is None:
                self._resend_at = time.monotonic() + self._retry_backoff
                self._retry_backoff = min(self._retry_backoff * 2, RETRY_MAX_S)
                log.warning("broker did not deliver (%s): events kept, re-sent later", reason)
            return
        if self._resend_at is None:
            self._retry_backoff = RETRY_MIN_S
        if rc.is_failure:
            # The broker refused this message (e.g. not authorised): retrying cannot help,
            # so it leaves the queue, counted by reason, rather than blocking it forever.
            self._error(f"puback_{_slug(rc.getName())}")
            self.outbox.dropped += len(seqs)
        self._acks.add(seqs)

    # ----- helpers ------------------------------------------------------------------
    def _error(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1
        LINK_ERRORS.labels(reason=reason).inc()


def _slug(name: str) -> str:
    return name.lower().replace(" ", "_")
