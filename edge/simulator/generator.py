"""The pure part of the simulator: a seeded, endless stream of Wi-Fi session events.

A discrete-event simulation over all sites at once. Visitors arrive as a non-homogeneous
Poisson process (thinning) whose rate follows the site's visit profile, weekend uplift and
capacity; each visitor's phone opens one session that sends a start, an interim update
every ``interim_s`` (sometimes from another access point: roaming), and a stop when the
log-normal dwell is over, except for a share of phones that vanish without one (battery
died, out of range before the controller noticed) so session timeouts get exercised.

Nothing here touches the network or the wall clock: the same config, seed and
pseudonymiser give the same events, ids included, which is what tests and benchmark
replays rely on. Each site draws from its own random stream, so choosing a subset of sites
does not change the events of the others.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from core.privacy import Pseudonym
from device_configs.models import AccessPoint, DeviceConfigs, Site
from edge.simulator.profiles import VisitProfile, profile_for
from schemas.wifi import (
    WifiSessionData,
    WifiSessionInterimV1,
    WifiSessionStartV1,
    WifiSessionStopV1,
)

WifiEvent = WifiSessionStartV1 | WifiSessionInterimV1 | WifiSessionStopV1
#: MAC bytes and the event time -> what the edge would publish instead of the MAC. The
#: time matters because the edge's key rotates daily.
Pseudonymise = Callable[[bytes, datetime], Pseudonym]

SOURCE = "sim.wifi"
#: RFC 2866 Acct-Terminate-Cause values a controller reports, with how often we pick them.
TERMINATE_CAUSES = (
    ("User-Request", 0.35),
    ("Lost-Carrier", 0.35),
    ("Idle-Timeout", 0.25),
    ("Session-Timeout", 0.05),
)
_MIN_DWELL_S = 120.0  # a phone that joins for less than this never gets a DHCP lease
_MAX_DWELL_S = 12 * 3600.0


def edge_device_id(site_id: str) -> str:
    """The device id the site's edge agent publishes under (one agent per site)."""
    return f"{site_id}-edge"


@dataclass(frozen=True)
class SimConfig:
    """Everything that shapes the generated traffic (all but ``start`` have demo defaults)."""

    start: datetime
    seed: int = 1
    scale: float = 1.0  # multiplies arrival rates: < 1 for light demos and tests
    wifi_adoption: float = 0.4  # share of visitors whose phone joins the free Wi-Fi
    peak_fill: float = 0.7  # peak weekend occupancy as a share of capacity
    interim_s: float = 300.0  # RADIUS Acct-Interim-Interval
    randomized_share: float = 0.4  # phones using a private (randomised) MAC
    no_stop_share: float = 0.05  # sessions that end without a stop event
    roam_probability: float = 0.15  # per interim: the phone moved to another AP
    warmup: timedelta = timedelta(0)  # simulate this long before start, emit nothing
    site_prefix: str = ""  # "<prefix>-<site>" ids, for isolated test namespaces
    #: Festivals or tour-bus waves: extra arrivals at a site, ``factor`` times its busiest-
    #: hour rate, whatever the hour (the demo uses it to show an overcrowding alert at any
    #: time of day). Occupancy stays capped at the site's capacity.
    surges: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("SimConfig.start must be timezone-aware")
        for name in ("wifi_adoption", "peak_fill", "randomized_share", "no_stop_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"SimConfig.{name} must be within [0, 1]")
        if self.scale <= 0 or self.interim_s <= 0:
            raise ValueError("SimConfig.scale and interim_s must be positive")
        if any(factor <= 0 for factor in self.surges.values()):
            raise ValueError("SimConfig.surges factors must be positive")


@dataclass
class _SiteState:
    site: Site
    site_id: str  # as published (with the prefix)
    device: str  # its edge agent's id
    aps: list[AccessPoint]
    profile: VisitProfile
    rng: random.Random
    tz: ZoneInfo
    base_rate: float  # weekday arrivals per second at the profile's busiest hour
    surge_rate: float  # extra arrivals per second from a surge, independent of the hour
    cap: int  # most simultaneous sessions the site can hold
    active: int = 0
    peak: int = 0
    rejected: int = 0
    counter: int = 0

    def arrival_rate(self, t: float) -> float:
        local = datetime.fromtimestamp(t, self.tz)
        factor = self.profile.weekend_factor if local.weekday() >= 5 else 1.0
        hour = local.hour + local.minute / 60 + local.second / 3600
        return self.base_rate * factor * self.profile.rate(hour) + self.surge_rate


@dataclass
class _Session:
    state: _SiteState
    session_id: str
    mac: bytes
    ap: int
    ssid: str
    signal: int
    rx_rate: float
    tx_rate: float
    started: float
    ends: float
    silent_end: bool
    rx: int = 0
    tx: int = 0
    last: float = field(default=0.0)


_ARRIVAL, _INTERIM, _END = 0, 1, 2


class WifiSessionGenerator:
    """Iterate to get events in event-time order; the stream never ends by itself."""

    def __init__(self, configs: DeviceConfigs, config: SimConfig, pseudonymise: Pseudonymise):
        self.config = config
        self._pseudonymise = pseudonymise
        self._states = [self._site_state(site, configs) for site in configs.sites]
        if not self._states:
            raise ValueError("no sites to simulate")
        self._heap: list[tuple[float, int, int, object]] = []
        self._fifo: deque[tuple[float, int, int, object]] = deque()
        self._seq = 0
        self._begin = (config.start - config.warmup).timestamp()
        self._emit_from = config.start.timestamp()

    def _site_state(self, site: Site, configs: DeviceConfigs) -> _SiteState:
        c = self.config
        aps = configs.access_points_at(site.id)
        if not aps:
            raise ValueError(f"site {site.id!r} has no access points to simulate")
        profile = profile_for(site)
        target = site.capacity_persons * c.peak_fill * c.wifi_adoption
        site_id = f"{c.site_prefix}-{site.id}" if c.site_prefix else site.id
        base_rate = c.scale * target / (profile.weekend_factor * profile.mean_dwell_s)
        return _SiteState(
            site=site,
            site_id=site_id,
            device=edge_device_id(site_id),
            aps=aps,
            profile=profile,
            rng=random.Random(f"{c.seed}:{site.id}"),
            tz=ZoneInfo(site.timezone),
            base_rate=base_rate,
            surge_rate=base_rate * c.surges.get(site.id, 0.0),
            cap=max(1, int(site.capacity_persons * c.wifi_adoption)),
        )

    # -- introspection for tests and progress output ---------------------------------

    def occupancy(self) -> dict[str, int]:
        """Sessions open right now per published site id (phones still on the site)."""
        return {s.site_id: s.active for s in self._states}

    def capacity(self) -> dict[str, int]:
        """Most simultaneous sessions per site (capacity x Wi-Fi adoption)."""
        return {s.site_id: s.cap for s in self._states}

    def peak_occupancy(self) -> dict[str, int]:
        return {s.site_id: s.peak for s in self._states}

    def rejected(self) -> dict[str, int]:
        """Visitors turned away because the site was full (never silently)."""
        return {s.site_id: s.rejected for s in self._states}

    # -- the simulation ----------------------------------------------------------------

    def __iter__(self) -> Iterator[WifiEvent]:
        for state in self._states:
            self._push(self._next_arrival(state, self._begin), _ARRIVAL, state)
        fifo, heap = self._fifo, self._heap
        while True:
            if fifo and (not heap or fifo[0] < heap[0]):
                t, _, action, obj = fifo.popleft()
            else:
                t, _, action, obj = heapq.heappop(heap)
            if action == _ARRIVAL:
                assert isinstance(obj, _SiteState)
                event: WifiEvent | None = self._arrive(obj, t)
                self._push(self._next_arrival(obj, t), _ARRIVAL, obj)
            else:
                assert isinstance(obj, _Session)
                event = self._interim(obj, t) if action == _INTERIM else self._end(obj, t)
            if event is not None:
                yield event

    def _push(self, t: float, action: int, obj: object) -> None:
        """Schedule ``obj``; what comes out is in (time, push order) either way.

        Why two queues: a session's next interim is ``interim_s`` after now, so interims are
        pushed in time order and can wait in a FIFO, popped in O(1); only one earlier than
        the FIFO's tail needs the heap. Arrivals and ends go to the heap too: one far ahead
        in the FIFO would send every interim before it to the heap.
        """
        self._seq += 1
        entry = (t, self._seq, action, obj)
        if action == _INTERIM and (not self._fifo or self._fifo[-1][0] <= t):
            self._fifo.append(entry)
        else:
            heapq.heappush(self._heap, entry)

    def _next_arrival(self, state: _SiteState, t: float) -> float:
        """Thinning (Lewis-Shedler): candidates at the peak rate, kept with rate(t)/peak."""
        peak = state.base_rate * state.profile.weekend_factor + state.surge_rate
        while True:
            t += state.rng.expovariate(peak)
            if state.rng.random() * peak <= state.arrival_rate(t):
                return t

    def _arrive(self, state: _SiteState, t: float) -> WifiEvent | None:
        if state.active >= state.cap:
            state.rejected += 1
            return None
        rng, c = state.rng, self.config
        state.active += 1
        state.peak = max(state.peak, state.active)
        state.counter += 1
        dwell = (
            state.profile.dwell_median_min
            * 60
            * math.exp(state.profile.dwell_sigma * rng.gauss(0.0, 1.0))
        )
        ap = rng.randrange(len(state.aps))
        rx_rate = rng.lognormvariate(math.log(1500.0), 1.2)  # bytes/s, median 1.5 kB/s
        session = _Session(
            state=state,
            session_id=f"{rng.getrandbits(64):016X}",
            mac=_synthetic_mac(rng, rng.random() < c.randomized_share),
            ap=ap,
            ssid=rng.choice(state.aps[ap].ssids),
            signal=_clamp_dbm(rng.gauss(-65.0, 8.0)),
            rx_rate=rx_rate,
            tx_rate=rx_rate * rng.uniform(0.08, 0.35),
            started=t,
            ends=t + min(max(dwell, _MIN_DWELL_S), _MAX_DWELL_S),
            silent_end=rng.random() < c.no_stop_share,
            last=t,
        )
        self._schedule_next(session, t)
        return self._event(WifiSessionStartV1, session, t)

    def _schedule_next(self, session: _Session, t: float) -> None:
        """The session's next interim, or its end. Interims that would fall in the warm-up
        are skipped (never published; the counters catch up at the next one)."""
        step = self.config.interim_s
        next_interim = t + step
        if next_interim < self._emit_from:
            next_interim += math.ceil((self._emit_from - next_interim) / step) * step
        if next_interim < session.ends:
            self._push(next_interim, _INTERIM, session)
        else:
            self._push(session.ends, _END, session)

    def _interim(self, session: _Session, t: float) -> WifiEvent | None:
        rng = session.state.rng
        self._grow_counters(session, t)
        if len(session.state.aps) > 1 and rng.random() < self.config.roam_probability:
            others = [i for i in range(len(session.state.aps)) if i != session.ap]
            session.ap = rng.choice(others)
            session.signal = _clamp_dbm(rng.gauss(-65.0, 8.0))
        else:
            session.signal = _clamp_dbm(session.signal + rng.gauss(0.0, 3.0))
        self._schedule_next(session, t)
        return self._event(WifiSessionInterimV1, session, t)

    def _end(self, session: _Session, t: float) -> WifiEvent | None:
        state = session.state
        state.active -= 1
        self._grow_counters(session, t)
        if session.silent_end:
            return None
        cause = _weighted(state.rng, TERMINATE_CAUSES)
        return self._event(WifiSessionStopV1, session, t, terminate_cause=cause)

    def _grow_counters(self, session: _Session, t: float) -> None:
        rng, dt = session.state.rng, t - session.last
        session.rx += int(session.rx_rate * dt * rng.uniform(0.3, 1.7))
        session.tx += int(session.tx_rate * dt * rng.uniform(0.3, 1.7))
        session.last = t

    def _event(
        self,
        model: type[WifiEvent],
        session: _Session,
        t: float,
        terminate_cause: str | None = None,
    ) -> WifiEvent | None:
        """The event for the session's current state; nothing while warming up."""
        if t < self._emit_from:
            return None
        state = session.state
        when = datetime.fromtimestamp(round(t, 3), UTC)
        pseudonym = self._pseudonymise(session.mac, when)
        started = model is WifiSessionStartV1
        data = WifiSessionData(
            client_id=pseudonym.client_id,
            session_id=session.session_id,
            ap=state.aps[session.ap].id,
            ssid=session.ssid,
            randomized_mac=pseudonym.randomized,
            signal_dbm=session.signal,
            rx_bytes=None if started else session.rx,
            tx_bytes=None if started else session.tx,
            session_seconds=None if started else int(t - session.started),
            terminate_cause=terminate_cause,
        )
        return model(
            id=_uuid7(t, state.rng),
            site=state.site_id,
            device=state.device,
            source=SOURCE,
            event_time=when,
            data=data,
        )


def _synthetic_mac(rng: random.Random, randomized: bool) -> bytes:
    """A made-up MAC; private ones set the locally-administered bit as phones do."""
    first = rng.getrandbits(8) & 0xFC  # unicast, globally administered
    if randomized:
        first |= 0x02
    return bytes([first]) + rng.getrandbits(40).to_bytes(5, "big")


def _uuid7(t: float, rng: random.Random) -> str:
    """A UUIDv7 (time-ordered) from the simulated time and the seeded random stream.

    Formatted by hand: ``str(uuid.UUID(int=...))`` took 1.4 µs of the ~18 µs per simulated
    event, this 0.55 (``tests/unit/test_simulator_ids.py`` checks the form)."""
    value = (int(t * 1000) & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76 | rng.getrandbits(12) << 64 | 0b10 << 62 | rng.getrandbits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _clamp_dbm(value: float) -> int:
    return int(min(-30.0, max(-95.0, value)))


def _weighted(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    names, weights = zip(*choices, strict=True)
    return str(rng.choices(names, weights)[0])
