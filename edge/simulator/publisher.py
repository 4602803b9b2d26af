"""Publish simulated events over MQTT exactly as a fleet of real edge agents would.

One MQTT 5 connection per site's edge device (paho-mqtt 2.x), each with its own Last Will
(retained ``offline`` availability), an ``online`` availability published only once the
broker has accepted the connection, heartbeats every 30 s of simulated time, QoS 1 for
everything. Unacknowledged messages are bounded by a shared in-flight window so a slow
broker slows the simulator down instead of filling memory.

Session events are batched per device like a real agent's uplink would (see
:mod:`schemas.batch`): an event goes out at once when its device has sent nothing for
``linger_s``, otherwise it waits at most ``linger_s`` with the device's next ones, up to
``batch`` events a message. A quiet device adds no latency; a busy one sends a few large
messages instead of many small ones, which is what the per-message costs of paho, Mosquitto
and the gateway need at thousands of events per second.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import paho.mqtt.client as mqtt

from core.mqtt_client import MqttClientSettings, make_mqtt_client
from edge.link.publisher import RETRY_MAX_S, RETRY_MIN_S, RETRY_REASONS
from edge.simulator.generator import SOURCE, WifiEvent, edge_device_id
from schemas.batch import MAX_BATCH_EVENTS, join_batch
from schemas.codec import encode_event
from schemas.device import AvailabilityData, AvailabilityV1, DeviceHeartbeatV1, HeartbeatData
from schemas.envelope import EventBase
from schemas.topics import DeviceKind, MqttStream, MqttTopic

log = logging.getLogger(__name__)

#: What connecting can raise: refused, unresolvable host, timeout, TLS failure.
CONNECT_ERRORS = (OSError, ValueError)
HEARTBEAT_SIM_S = 30.0  # schemas.device: every edge device beats every 30 s
SERVICE_EVERY = 128  # events between network-loop turns: bigger TCP batches, fewer syscalls
STALL_TIMEOUT_S = 30.0  # no PUBACK for this long while the window is full = broker gone
SOFTWARE = "tourpulse-sim"
_TCP_CORK: int | None = getattr(socket, "TCP_CORK", None)  # Linux only; elsewhere: no batching


class BrokerUnreachable(ConnectionError):
    """The MQTT broker could not be reached, refused us, or stopped acknowledging."""


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


class _EdgeLink:
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


class SimPublisher:
    """Connects one edge link per site, then publishes an event stream with pacing."""

    def __init__(
        self,
        sites: Iterable[str],
        opts: PublishOptions,
        progress: Callable[[PublishStats], None] | None = None,
        on_sent: Callable[[WifiEvent, float], None] | None = None,
    ) -> None:
        if not 1 <= opts.batch <= MAX_BATCH_EVENTS:
            raise ValueError(f"batch must be 1..{MAX_BATCH_EVENTS} events, got {opts.batch}")
        self.opts = opts
        self.stats = PublishStats()
        self.stop = threading.Event()
        self._links = {s: _EdgeLink(s, opts, self.stats) for s in sites}
        self._progress = progress
        self._on_sent = on_sent
        self._next_misc = 0.0
        self._next_beat: float | None = None
        self._next_progress = time.monotonic() + opts.progress_s

    @property
    def in_flight(self) -> int:
        waiting = sum(link.waiting for link in self._links.values())
        return self.stats.published - self.stats.acked + waiting

    def connect(self, sim_now: datetime) -> None:
        """Connect every link; each says ``online`` only after the broker accepted it."""
        opts = self.opts
        for link in self._links.values():
            will = encode_event(self._availability(link, sim_now, "offline", "last-will"))
            try:
                link.connect(opts, will)
            except CONNECT_ERRORS as exc:
                self.close(graceful=False)
                raise BrokerUnreachable(
                    f"cannot reach MQTT broker at {opts.host}:{opts.port}: {exc}"
                ) from exc
        deadline = time.monotonic() + opts.connect_timeout_s
        links = list(self._links.values())
        while time.monotonic() < deadline and not all(x.connected or x.refused for x in links):
            self._service(0.1)
        for link in links:
            if not link.connected:
                self.close(graceful=False)
                why = link.refused or f"no CONNACK within {opts.connect_timeout_s:.0f} s"
                raise BrokerUnreachable(f"MQTT broker {opts.host}:{opts.port} refused: {why}")
            online = self._availability(link, sim_now, "online", None)
            link.publish(MqttStream.AVAILABILITY, encode_event(online), retain=True)

    def run(self, events: Iterable[WifiEvent]) -> PublishStats:
        """Publish until the events, ``max_events`` or ``duration_s`` run out, or ``stop``."""
        opts, stats = self.opts, self.stats
        wall0 = time.monotonic()
        sim0: float | None = None
        for event in events:
            t = event.event_time.timestamp()
            if sim0 is None:  # clocks start at the first event, not before a long warm-up
                sim0, wall0 = t, time.monotonic()
                stats.started, self._next_progress = wall0, wall0 + opts.progress_s
            self._pace(wall0, sim0, t)
            if self.stop.is_set() or self._out_of_time(wall0):
                break
            self._tick(t)
            self._wait_for_window()
            self._links[event.site].add_session(encode_event(event), time.monotonic(), opts)
            if self._on_sent is not None:
                self._on_sent(event, time.time())
            stats.sent += 1
            stats.sim_time = event.event_time
            if stats.sent % SERVICE_EVERY == 0:
                self._service(0)
            if opts.max_events is not None and stats.sent >= opts.max_events:
                break
        self._drain()
        return stats

    def close(self, graceful: bool = True) -> None:
        """Say ``offline`` (retained, reason ``shutdown``) when leaving cleanly, then go."""
        if graceful:
            for link in self._links.values():
                if link.connected:
                    when = self.stats.sim_time or datetime.now().astimezone()
                    offline = self._availability(link, when, "offline", "shutdown")
                    link.publish(MqttStream.AVAILABILITY, encode_event(offline), retain=True)
            self._drain()
        for link in self._links.values():
            link.close()

    # -- the network loop, driven from this thread -----------------------------------

    def _service(self, timeout: float) -> None:
        """One turn for every link: send due batches, read PUBACKs, flush writes, keepalive,
        reconnect. Waits at most ``timeout`` seconds, less when a batch falls due sooner."""
        readers, writers = {}, {}
        timeout = self._send_due_batches(timeout)
        now = time.monotonic()
        for link in self._links.values():
            link.resend_due(now)
            link.flush()
            sock = link.client.socket()
            if sock is None:
                continue
            readers[sock] = link
            if link.client.want_write():
                writers[sock] = link
        if readers:
            readable, writable, _ = select.select(list(readers), list(writers), [], timeout)
            for sock in readable:
                readers[sock].client.loop_read()
            for sock in writable:
                writers[sock].client.loop_write()
        elif timeout > 0:
            time.sleep(timeout)
        now = time.monotonic()
        if now >= self._next_misc:
            self._next_misc = now + 1.0
            for link in self._links.values():
                if link.client.loop_misc() == mqtt.MQTT_ERR_NO_CONN:
                    self._reconnect(link)

    def _send_due_batches(self, timeout: float, force: bool = False) -> float:
        """Send every batch whose linger is over (all with ``force``); return ``timeout``
        shortened to the next batch's deadline, so waiting never delays one."""
        now, linger = time.monotonic(), self.opts.linger_s
        for link in self._links.values():
            left = link.batch_due(now, linger)
            if left is None:
                continue
            if force or left <= 0:
                link.send_batch(now)
            else:
                timeout = min(timeout, left)
        return timeout

    def _reconnect(self, link: _EdgeLink) -> None:
        try:
            link.client.reconnect()
        except CONNECT_ERRORS as exc:
            log.warning("%s: broker unreachable (%s); retrying", link.device, exc)

    def _wait_until(self, done: Callable[[], bool], what: str) -> None:
        """Run the network loop until ``done()``; fail if acknowledgements stop coming."""
        acked, deadline = self.stats.acked, time.monotonic() + STALL_TIMEOUT_S
        while not done():
            self._service(0.05)
            if self.stats.acked != acked:
                acked, deadline = self.stats.acked, time.monotonic() + STALL_TIMEOUT_S
            elif time.monotonic() > deadline:
                raise BrokerUnreachable(
                    f"broker acknowledged nothing for {STALL_TIMEOUT_S:.0f} s while {what} "
                    f"({self.in_flight} messages unacknowledged)"
                )

    def _wait_for_window(self) -> None:
        if self.in_flight >= self.opts.window:
            self._wait_until(lambda: self.in_flight < self.opts.window, "publishing")

    def _drain(self) -> None:
        self._send_due_batches(0, force=True)
        self._wait_until(lambda: self.in_flight == 0, "draining")

    # -- pacing, heartbeats, progress ------------------------------------------------

    def _pace(self, wall0: float, sim0: float, t: float) -> None:
        """Wait (serving the network) until the event is due by ``speed`` and ``rate``."""
        speed, rate = self.opts.speed, self.opts.rate
        due = wall0
        if speed:
            due = max(due, wall0 + (t - sim0) / speed)
        if rate:
            due = max(due, wall0 + self.stats.sent / rate)
        while not self.stop.is_set() and (now := time.monotonic()) < due:
            self._service(min(due - now, 0.2))
            if speed and not self._out_of_time(wall0):
                self._tick(min(t, sim0 + (time.monotonic() - wall0) * speed))

    def _tick(self, sim_t: float) -> None:
        if self._next_beat is None or sim_t >= self._next_beat:
            self._heartbeats(datetime.fromtimestamp(sim_t, UTC))
            self._next_beat = sim_t + HEARTBEAT_SIM_S
        if self._progress is not None and time.monotonic() >= self._next_progress:
            self._next_progress = time.monotonic() + self.opts.progress_s
            self._progress(self.stats)

    def _out_of_time(self, wall0: float) -> bool:
        limit = self.opts.duration_s
        return limit is not None and time.monotonic() - wall0 >= limit

    def _heartbeats(self, when: datetime) -> None:
        data = HeartbeatData(
            uptime_s=round(self.stats.elapsed_s, 3),
            software=SOFTWARE,
            queue_depth=self.in_flight,
            rates={"session": round(self.stats.rate, 2)},
            errors={"puback_failed": self.stats.failed} if self.stats.failed else {},
        )
        for link in self._links.values():
            beat = DeviceHeartbeatV1(
                site=link.site, device=link.device, source=SOURCE, event_time=when, data=data
            )
            link.publish(MqttStream.HEARTBEAT, encode_event(beat))
            self.stats.heartbeats += 1

    @staticmethod
    def _availability(
        link: _EdgeLink, when: datetime, state: Literal["online", "offline"], reason: str | None
    ) -> EventBase:
        return AvailabilityV1(
            site=link.site,
            device=link.device,
            source=SOURCE,
            event_time=when,
            data=AvailabilityData(state=state, reason=reason),
        )
