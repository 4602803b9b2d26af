"""The benchmarks' sender: real edge links (``MqttLink`` + SQLite outbox) fed simulated events.

Why the real link: the production uplink (outbox write, per-device batching, PUBACK ->
delete) is what a benchmark must measure; a sender with its own batching would measure a
path nothing in the field uses. Each link is one site box serving a share of the sites
(the Wi-Fi agent takes a list of sites), with its own outbox file and link thread.

Events come from an iterator: the simulator's generator, or a :class:`~infra.bench.replay.Replay`
of its events made before a measured phase. Taking them from it is the source's work, not
the link's: the feeder measures its own CPU time for it (``time.thread_time``) so the edge
link's CPU per event can be reported net of it.

The feeder wakes every :data:`TICK_S` and submits what fell due since, one outbox
transaction per link. It used to go round again at once after submitting, so the faster it
ran the smaller its transactions got (about 3 events each at 10,000 events/s): the edge
link's cost then measured the feeder's loop speed, as an SQLite commit costs far more than
an event. An event's send time, for one event in ``sample_every``, is the start of the tick
that submitted it: it was due by then and durable at the edge a few milliseconds later, so
the latency figures include the wait for the tick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from device_configs.loader import load_device_configs
from edge.link import LinkIdentity, MqttLink, MqttLinkConfig
from edge.simulator.generator import SimConfig, WifiEvent, WifiSessionGenerator, edge_device_id
from edge.simulator.identity import SimulatedClockPseudonymiser
from infra.bench.context import BenchError
from schemas.envelope import EventBase
from schemas.topics import DeviceKind

log = logging.getLogger(__name__)

TICK_S = 0.01  # the feeder submits what fell due every tick: one outbox commit per link
MAX_CHUNK = 2000  # most events generated and submitted in one tick
CONNECT_TIMEOUT_S = 30.0


@dataclass
class FeedStats:
    """What one :meth:`EdgeFleet.feed` did."""

    submitted: int = 0
    started: float = 0.0  # wall clock (time.time) of the first submission
    ended: float = 0.0
    generate_cpu_s: float = 0.0  # feeder CPU taking events from the source (not the link's)
    #: (event id, wall time of the tick that submitted it) for one event in ``sample_every``.
    samples: list[tuple[str, float]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.submitted / max(self.ended - self.started, 1e-9)


def city_events(
    config_dir: Path,
    keys: Path,
    ns: str,
    seed: int = 42,
    warmup: timedelta = timedelta(hours=3),
    start: datetime | None = None,
) -> Iterator[WifiEvent]:
    """The simulator's Wi-Fi events for every site of the deployment, sites named ``ns-*``.

    ``warmup`` of simulated time fills the sites before the first event (a few seconds of
    CPU for 3 hours; a quick run takes less). ``start`` (default: now) sets the hour of the
    city's day, and with it which sites are busy: in the evening the first thousands of
    events come from a handful of night-life sites.
    """
    configs = load_device_configs(config_dir)
    sim = SimConfig(start=start or datetime.now(UTC), seed=seed, site_prefix=ns, warmup=warmup)
    return iter(WifiSessionGenerator(configs, sim, SimulatedClockPseudonymiser(keys)))


class EdgeFleet:
    """``boxes`` edge links on one broker; sites are spread over them round-robin."""

    def __init__(
        self,
        sites: list[str],
        host: str,
        port: int,
        work_dir: Path,
        *,
        boxes: int = 4,
        sample_every: int = 10,
    ) -> None:
        self.sample_every = sample_every
        self.links: list[MqttLink] = []
        self._by_site: dict[str, MqttLink] = {}
        ordered = sorted(sites)
        for n in range(min(boxes, len(sites))):
            cfg = MqttLinkConfig(
                host=host,
                port=port,
                outbox_path=work_dir / f"outbox-{n}.sqlite",
                heartbeat_s=10.0,
                max_inflight=100,
            )
            # Its heartbeats and availability go under its first site (a configured one).
            ident = LinkIdentity(ordered[n], edge_device_id(ordered[n]), DeviceKind.WIFI)
            self.links.append(MqttLink(cfg, ident))
        for i, site in enumerate(ordered):
            self._by_site[site] = self.links[i % len(self.links)]

    def start(self) -> None:
        for link in self.links:
            link.start()
        for link in self.links:
            if not link.wait_connected(CONNECT_TIMEOUT_S):
                raise BenchError(f"edge link {link.identity.device} did not connect: {link.errors}")

    def stop(self) -> None:
        for link in self.links:
            link.stop()

    @property
    def acked(self) -> int:
        return sum(link.acked_total for link in self.links)

    @property
    def messages(self) -> int:
        return sum(link.messages_total for link in self.links)

    @property
    def queued(self) -> int:
        return sum(link.outbox.depth() for link in self.links)

    def feed(
        self,
        events: Iterator[EventBase],
        duration_s: float,
        rate: float | None,
        hold: Callable[[int], bool] | None = None,
        progress: Callable[[int, float], None] | None = None,
    ) -> FeedStats:
        """Submit events for ``duration_s``: paced at ``rate``/s, or as fast as ``hold``
        (called with the count submitted so far) lets them go when ``rate`` is None."""
        stats = FeedStats(started=time.time())
        t0 = time.monotonic()
        next_progress = t0 + 10.0
        while (now := time.monotonic()) - t0 < duration_s:
            if rate is None:
                due = 0 if hold is not None and hold(stats.submitted) else MAX_CHUNK
            else:
                due = min(int(rate * (now - t0)) - stats.submitted, MAX_CHUNK)
            if due > 0:
                self._submit(events, due, stats, time.time())
            if progress is not None and now >= next_progress:
                progress(stats.submitted, time.monotonic() - t0)
                next_progress = now + 10.0
            time.sleep(max(0.0, now + TICK_S - time.monotonic()))
        stats.ended = time.time()
        return stats

    def _submit(
        self, events: Iterator[EventBase], n: int, stats: FeedStats, tick_at: float
    ) -> None:
        cpu0 = time.thread_time()
        chunk = [next(events) for _ in range(n)]
        stats.generate_cpu_s += time.thread_time() - cpu0
        groups: dict[int, list[EventBase]] = {}
        for event in chunk:
            groups.setdefault(id(self._by_site[event.site]), []).append(event)
        links = {id(link): link for link in self.links}
        for key, group in groups.items():
            links[key].submit_many(group)
        first = -stats.submitted % self.sample_every
        stats.samples.extend((e.id, tick_at) for e in chunk[first :: self.sample_every])
        stats.submitted += n
