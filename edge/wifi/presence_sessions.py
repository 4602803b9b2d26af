"""Sessions from sightings: how location feeds (Meraki) reach occupancy like RADIUS does.

A location feed only says "client X was seen near AP Y at time T", about once a minute.
Occupancy is counted from session events, so the agent turns sightings into sessions:
the first sighting of a client at a site starts a session, each newer sighting is an
interim (with the nearest AP of that moment), and a client not seen for ``timeout_s`` of
agent time is stopped at the time it was last seen. Doing this at the edge keeps one
occupancy definition downstream and lets the feed's raw presence events go out unchanged.

Sessions are keyed by pseudonym, never by MAC. When the pseudonymisation key rotates the
pseudonym changes, so the old session times out and a new one starts: deliberate, ids must
not link across days. Open sessions live in memory; after a restart the worker's own
session timeout closes any the agent forgot.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from core.privacy import Pseudonym
from edge.wifi.adapter import SourceStats
from edge.wifi.sessions import EventEmitter, SessionStatus
from schemas.envelope import EventBase

#: Bound on remembered clients; beyond it the longest-unseen session is stopped early.
MAX_OPEN = 200_000
#: RADIUS Acct-Terminate-Cause closest to "the feed stopped seeing it".
ABSENT_CAUSE = "Idle-Timeout"


@dataclass
class _Open:
    session_id: str
    site: str
    ap: str
    ssid: str | None
    randomized: bool
    started: datetime
    last_seen: datetime
    arrived: float  # agent monotonic time of the last sighting (absence is measured on it)


class PresenceSessions:
    """Sighting → start/interim; absence → stop. Not thread-safe: one event loop owns it."""

    def __init__(
        self,
        emitter: EventEmitter,
        stats: SourceStats,
        timeout_s: float,
        prefix: str,
        max_open: int = MAX_OPEN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.emitter = emitter
        self.stats = stats
        self.timeout_s = timeout_s
        self.prefix = prefix
        self.max_open = max_open
        self.clock = clock
        self._open: OrderedDict[tuple[str, str], _Open] = OrderedDict()  # least recent first

    def __len__(self) -> int:
        return len(self._open)

    def sighting(
        self,
        site: str,
        ap: str,
        pseudo: Pseudonym,
        seen: datetime,
        ssid: str | None,
        rssi: int | None,
    ) -> list[EventBase]:
        """Events for one sighting: a start, an interim, or none (not newer than the last)."""
        key = (site, pseudo.client_id)
        now = self.clock()
        s = self._open.get(key)
        if s is not None:
            if seen <= s.last_seen:  # the feed repeats a client's latest record until re-seen
                return []
            s.ap, s.last_seen, s.arrived = ap, seen, now
            s.ssid = ssid or s.ssid
            self._open.move_to_end(key)
            return [self._event(SessionStatus.INTERIM, s, pseudo.client_id, rssi)]
        s = _Open(
            session_id=f"{self.prefix}-{pseudo.client_id[:16]}-{int(seen.timestamp() * 1000)}",
            site=site,
            ap=ap,
            ssid=ssid,
            randomized=pseudo.randomized,
            started=seen,
            last_seen=seen,
            arrived=now,
        )
        self._open[key] = s
        events = [self._event(SessionStatus.START, s, pseudo.client_id, rssi)]
        while len(self._open) > self.max_open:
            (_, old_client), old = self._open.popitem(last=False)
            self.stats.drop("session_evicted")
            events.append(self._event(SessionStatus.STOP, old, old_client, None, ABSENT_CAUSE))
        return events

    def expire(self) -> list[EventBase]:
        """Stop events for clients unseen for ``timeout_s`` (call periodically)."""
        limit = self.clock() - self.timeout_s
        events = []
        while self._open:
            key, s = next(iter(self._open.items()))
            if s.arrived > limit:
                break
            del self._open[key]
            events.append(self._event(SessionStatus.STOP, s, key[1], None, ABSENT_CAUSE))
        return events

    def close_all(self, cause: str = "NAS-Reboot") -> list[EventBase]:
        """Stop every open session (agent shutdown): a restart starts fresh ones, and
        closing these avoids counting a client twice until the worker's timeout."""
        events = [
            self._event(SessionStatus.STOP, s, k[1], None, cause) for k, s in self._open.items()
        ]
        self._open.clear()
        return events

    def _event(
        self,
        status: SessionStatus,
        s: _Open,
        client_id: str,
        rssi: int | None,
        cause: str | None = None,
    ) -> EventBase:
        return self.emitter.session_event(
            status,
            client_id=client_id,
            randomized=s.randomized,
            session_id=s.session_id,
            site=s.site,
            ap=s.ap,
            event_time=s.last_seen,
            dedup_key=f"{s.session_id}|{status}|{s.last_seen.isoformat()}",
            stats=self.stats,
            ssid=s.ssid,
            signal_dbm=rssi,
            session_seconds=int((s.last_seen - s.started).total_seconds()),
            terminate_cause=cause,
        )
