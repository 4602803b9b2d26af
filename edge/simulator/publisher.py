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
import select
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Literal

import paho.mqtt.client as mqtt

from edge.simulator.generator import SOURCE, WifiEvent
from edge.simulator.site_link import PublishOptions, PublishStats, SiteLink
from schemas.batch import MAX_BATCH_EVENTS
from schemas.codec import encode_event
from schemas.device import AvailabilityData, AvailabilityV1, DeviceHeartbeatV1, HeartbeatData
from schemas.envelope import EventBase
from schemas.topics import MqttStream

log = logging.getLogger(__name__)

#: What connecting can raise: refused, unresolvable host, timeout, TLS failure.
CONNECT_ERRORS = (OSError, ValueError)
HEARTBEAT_SIM_S = 30.0  # schemas.device: every edge device beats every 30 s
SERVICE_EVERY = 128  # events between network-loop turns: bigger TCP batches, fewer syscalls
STALL_TIMEOUT_S = 30.0  # no PUBACK for this long while the window is full = broker gone
SOFTWARE = "tourpulse-sim"


class BrokerUnreachable(ConnectionError):
    """The MQTT broker could not be reached, refused us, or stopped acknowledging."""


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
        self._links = {s: SiteLink(s, opts, self.stats) for s in sites}
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

    def _reconnect(self, link: SiteLink) -> None:
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
        link: SiteLink, when: datetime, state: Literal["online", "offline"], reason: str | None
    ) -> EventBase:
        return AvailabilityV1(
            site=link.site,
            device=link.device,
            source=SOURCE,
            event_time=when,
            data=AvailabilityData(state=state, reason=reason),
        )
