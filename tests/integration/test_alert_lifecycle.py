"""Alert lifecycle: the pure state machine, then its PostgreSQL store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from psycopg_pool import AsyncConnectionPool

from stream.alerts import lifecycle as lc
from stream.alerts.lifecycle import AlertState, Severity, TransitionError
from stream.alerts.store import AlertNotFound, AlertStore

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def test_full_lifecycle_and_audit_states() -> None:
    alert, opened = lc.open_alert(
        "ben-thanh-market",
        "ben-thanh-market",
        "occupancy.high",
        Severity.MAJOR,
        T0,
        {"occupancy": 3100},
    )
    assert (opened.from_state, alert.state) == (None, AlertState.ACTIVE_UNACK)
    alert, _ = lc.acknowledge(alert, "lan", T0)
    assert alert.state is AlertState.ACTIVE_ACK
    with pytest.raises(TransitionError, match="already acknowledged"):
        lc.acknowledge(alert, "lan", T0)
    alert, cleared = lc.clear(alert, "system", T0)
    assert (cleared.from_state, alert.state) == (AlertState.ACTIVE_ACK, AlertState.CLEARED_ACK)
    with pytest.raises(TransitionError, match="already cleared"):
        lc.clear(alert, "lan", T0)


def test_cleared_unacked_alert_can_still_be_acknowledged() -> None:
    alert, _ = lc.open_alert("cam-1", "s", "camera.tamper", Severity.MINOR, T0, {})
    alert, _ = lc.clear(alert, "system", T0)
    alert, _ = lc.acknowledge(alert, "op", T0)
    assert alert.state is AlertState.CLEARED_ACK


def test_retrigger_never_lowers_severity() -> None:
    alert, _ = lc.open_alert("s", "s", "occupancy.high", Severity.MAJOR, T0, {})
    alert, _ = lc.retrigger(alert, Severity.WARNING, T0 + timedelta(seconds=5), {"n": 2})
    assert (alert.severity, alert.trigger_count, alert.details) == (Severity.MAJOR, 2, {"n": 2})


def test_escalation_raises_one_level_and_caps_at_critical() -> None:
    alert, _ = lc.open_alert("s", "s", "device.offline", Severity.MAJOR, T0, {})
    after = timedelta(minutes=5)
    assert not lc.escalation_due(alert, T0 + timedelta(minutes=4), after)
    assert lc.escalation_due(alert, T0 + after, after)
    alert, _ = lc.escalate(alert, T0 + after)
    assert alert.severity is Severity.CRITICAL
    assert not lc.escalation_due(alert, T0 + after + timedelta(minutes=1), after)
    alert, _ = lc.escalate(alert, T0 + 2 * after)
    assert (alert.severity, alert.escalations) == (Severity.CRITICAL, 2)
    acked, _ = lc.acknowledge(alert, "op", T0)
    assert not lc.escalation_due(acked, T0 + 10 * after, after)


@pytest.fixture
async def store(database_url: str):  # type: ignore[no-untyped-def]
    async with AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False) as pool:
        yield AlertStore(pool, incident_window=timedelta(minutes=15))


@pytest.mark.integration
async def test_one_active_alert_per_originator_and_type(store: AlertStore) -> None:
    first = await store.raise_alert("s1", "s1", "occupancy.high", Severity.MAJOR, T0, {"n": 1})
    again = await store.raise_alert("s1", "s1", "occupancy.high", Severity.MINOR, T0, {"n": 2})
    assert again.id == first.id and again.alert.trigger_count == 2
    other = await store.raise_alert("s1", "s1", "occupancy.rapid_rise", Severity.MINOR, T0, {})
    assert other.id != first.id
    assert other.incident_id == first.incident_id  # same site, same window: one incident
    await store.clear_by_rule("s1", "occupancy.high", T0 + timedelta(minutes=1))
    reopened = await store.raise_alert(
        "s1", "s1", "occupancy.high", Severity.MAJOR, T0 + timedelta(minutes=2), {}
    )
    assert reopened.id != first.id


@pytest.mark.integration
async def test_concurrent_raises_do_not_duplicate(store: AlertStore) -> None:
    results = await asyncio.gather(
        *(
            store.raise_alert("cam-9", "s2", "camera.stream_lost", Severity.MAJOR, T0, {})
            for _ in range(8)
        )
    )
    assert len({r.id for r in results}) == 1
    assert (await store.get(results[0].id)).alert.trigger_count == 8


@pytest.mark.integration
async def test_operator_actions_are_audited(store: AlertStore) -> None:
    a = await store.raise_alert("s3", "s3", "noise.loud", Severity.MINOR, T0, {})
    await store.act(a.id, "assign", "lan", T0, "minh")
    await store.act(a.id, "comment", "minh", T0, "on my way")
    await store.act(a.id, "ack", "minh", T0)
    done = await store.act(a.id, "clear", "minh", T0, "crowd dispersed")
    assert done.alert.state is AlertState.CLEARED_ACK and done.alert.assignee == "minh"
    history = await store.history(a.id)
    assert [(c.action, c.actor) for c in history] == [
        ("raise", "system"),
        ("assign", "lan"),
        ("comment", "minh"),
        ("ack", "minh"),
        ("clear", "minh"),
    ]
    with pytest.raises(TransitionError):
        await store.act(a.id, "ack", "minh", T0)
    with pytest.raises(AlertNotFound):
        await store.act(999_999, "ack", "minh", T0)


@pytest.mark.integration
async def test_escalation_and_incident_window(store: AlertStore) -> None:
    a = await store.raise_alert("dev-1", "s4", "device.offline", Severity.MINOR, T0, {})
    late = await store.raise_alert(
        "dev-2", "s4", "device.offline", Severity.MINOR, T0 + timedelta(hours=1), {}
    )
    assert late.incident_id != a.incident_id
    escalated = await store.escalate_due(T0 + timedelta(minutes=10), timedelta(minutes=10))
    assert [e.id for e in escalated] == [a.id]
    assert escalated[0].alert.severity is Severity.MAJOR
    assert await store.escalate_due(T0 + timedelta(minutes=11), timedelta(minutes=10)) == []
    active = await store.search(site="s4", states=[AlertState.ACTIVE_UNACK])
    assert {x.id for x in active} == {a.id, late.id}
