"""The emitter splits open sessions at the key rotation, driven by a fake clock.

What is checked is what leaves the edge: the events' pseudonyms, session ids and reasons.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.privacy import KeyStore, Pseudonymiser
from edge.wifi.adapter import SourceStats
from edge.wifi.sessions import KEY_ROTATION, STALE_AFTER, EventEmitter, SessionFacts, SessionStatus
from tests.support.edge_wifi_support import ListSink

#: 03:59 in Ho Chi Minh City (UTC+7), one minute before the default 04:00 rotation.
BEFORE = datetime(2026, 3, 1, 20, 59, tzinfo=UTC)
AT = datetime(2026, 3, 1, 21, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _facts(status: SessionStatus, mac: str, at: datetime, **kw: object) -> SessionFacts:
    base: dict[str, object] = {"session_id": "acct-1", "nas": "controller-1"}
    base.update(kw)
    return SessionFacts(
        status=status, mac=mac, site="ben-thanh-market", ap="btm-ap01", event_time=at,
        dedup_key=f"{status}|{at.isoformat()}", **base,  # type: ignore[arg-type]
    )  # fmt: skip


def test_open_sessions_stop_and_restart_under_the_new_pseudonym(tmp_path: Path) -> None:
    clock = Clock(BEFORE)
    sink = ListSink()
    emitter = EventEmitter(sink, Pseudonymiser(KeyStore(tmp_path / "k", clock=clock)), "btm-wifi")
    radius, hostapd = SourceStats("edge.wifi.radius"), SourceStats("edge.wifi.hostapd")
    a = emitter.session(_facts(SessionStatus.START, "3C:22:FB:00:00:01", BEFORE), radius)
    b = emitter.session(
        _facts(SessionStatus.START, "3C:22:FB:00:00:02", BEFORE, session_id="hostapd-x", nas=None),
        hostapd,
    )
    gone = emitter.session(_facts(SessionStatus.START, "3C:22:FB:00:00:03", BEFORE,
                                  session_id="acct-3"), radius)  # fmt: skip
    emitter.session(_facts(SessionStatus.STOP, "3C:22:FB:00:00:03", BEFORE, session_id="acct-3"),
                    radius)  # fmt: skip
    assert emitter.open_sessions() == 2
    clock.now = AT
    assert emitter.split_at_rotation(AT) == 2
    stops = [e for e in sink.events[4:] if e.type == "wifi.session.stop"]  # type: ignore[attr-defined]
    starts = [e for e in sink.events[4:] if e.type == "wifi.session.start"]  # type: ignore[attr-defined]
    assert len(sink.events) == 8 and len(stops) == len(starts) == 2
    old = {e.data.session_id: e.data.client_id for e in (a, b)}  # type: ignore[attr-defined]
    assert {s.data.session_id: s.data.client_id for s in stops} == old  # type: ignore[attr-defined]
    assert all(s.data.terminate_cause == KEY_ROTATION and s.event_time == AT for s in stops)  # type: ignore[attr-defined]
    assert all(s.data.session_seconds == 60 for s in stops)  # type: ignore[attr-defined]
    for start in starts:
        d = start.data  # type: ignore[attr-defined]
        assert d.start_cause == KEY_ROTATION and start.event_time == AT
        assert d.client_id not in old.values() and d.session_id not in old
    assert gone.data.session_id not in {s.data.session_id for s in stops}  # type: ignore[attr-defined]
    # The RADIUS session's next interim (same NAS id, new key) lands in the new session.
    later = AT + timedelta(minutes=5)
    interim = emitter.build_session(
        _facts(SessionStatus.INTERIM, "3C:22:FB:00:00:01", later), radius
    )
    new_radius = next(s for s in starts if s.source == "edge.wifi.radius")
    assert interim.data.session_id == new_radius.data.session_id  # type: ignore[attr-defined]
    # A Stop the NAS delayed across the rotation does not end the new session before it began.
    late = emitter.build_session(
        _facts(SessionStatus.STOP, "3C:22:FB:00:00:01", AT - timedelta(seconds=30)), radius
    )
    assert late.data.session_id == new_radius.data.session_id and late.event_time == AT  # type: ignore[attr-defined]
    # Nothing old is left to split a second time.
    assert emitter.split_at_rotation(AT) == 0


def test_a_session_whose_stop_was_lost_is_forgotten_not_split(tmp_path: Path) -> None:
    clock = Clock(BEFORE - STALE_AFTER - timedelta(minutes=1))
    sink = ListSink()
    emitter = EventEmitter(sink, Pseudonymiser(KeyStore(tmp_path / "k", clock=clock)), "btm-wifi")
    emitter.session(_facts(SessionStatus.START, "3C:22:FB:00:00:01", clock.now), SourceStats("r"))
    clock.now = AT
    assert emitter.split_at_rotation(AT) == 0
    assert len(sink.events) == 1 and emitter.open_sessions() == 0
