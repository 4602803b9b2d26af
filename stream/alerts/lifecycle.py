"""The alert lifecycle as a pure state machine (no I/O), shared by the stream and the API.

States follow the usual NOC convention: an alert is ACTIVE or CLEARED, and independently
acknowledged or not. There is at most one *active* alert per (originator, type): raising
it again updates that alert instead of spawning a duplicate, so a flapping sensor cannot
flood the operators' queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any


class Severity(IntEnum):
    """Ordered so escalation is ``min(severity + 1, CRITICAL)``."""

    WARNING = 1
    MINOR = 2
    MAJOR = 3
    CRITICAL = 4


class AlertState(StrEnum):
    ACTIVE_UNACK = "ACTIVE_UNACK"
    ACTIVE_ACK = "ACTIVE_ACK"
    CLEARED_UNACK = "CLEARED_UNACK"
    CLEARED_ACK = "CLEARED_ACK"

    @property
    def active(self) -> bool:
        return self in (AlertState.ACTIVE_UNACK, AlertState.ACTIVE_ACK)

    @property
    def acknowledged(self) -> bool:
        return self in (AlertState.ACTIVE_ACK, AlertState.CLEARED_ACK)


class TransitionError(ValueError):
    """An operator action that does not apply to the alert's current state."""


@dataclass(frozen=True)
class Alert:
    originator: str  # what the alert is about: a site, device or camera id
    site: str
    type: str  # e.g. "occupancy.high", "device.offline"
    severity: Severity
    state: AlertState
    created_at: datetime
    last_triggered_at: datetime
    trigger_count: int = 1
    assignee: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    escalations: int = 0
    last_escalated_at: datetime | None = None


@dataclass(frozen=True)
class Change:
    """One audit entry: who did what, and the state before and after."""

    action: str
    actor: str
    at: datetime
    from_state: AlertState | None
    to_state: AlertState
    note: str | None = None


def open_alert(
    originator: str,
    site: str,
    type_: str,
    severity: Severity,
    at: datetime,
    details: dict[str, Any],
) -> tuple[Alert, Change]:
    alert = Alert(
        originator, site, type_, severity, AlertState.ACTIVE_UNACK, at, at, 1, None, details
    )
    return alert, Change("raise", "system", at, None, alert.state)


def retrigger(
    alert: Alert, severity: Severity, at: datetime, details: dict[str, Any]
) -> tuple[Alert, Change]:
    """The condition fired again while the alert is active: update it, keep its identity.

    Severity never drops on a retrigger (an escalated alert stays escalated); the details
    are the latest the rule saw.
    """
    if not alert.state.active:
        raise TransitionError("a cleared alert is not retriggered; open a new one")
    updated = replace(
        alert,
        severity=max(alert.severity, severity),
        last_triggered_at=max(alert.last_triggered_at, at),
        trigger_count=alert.trigger_count + 1,
        details=details,
    )
    return updated, Change("retrigger", "system", at, alert.state, updated.state)


def acknowledge(alert: Alert, actor: str, at: datetime) -> tuple[Alert, Change]:
    target = {
        AlertState.ACTIVE_UNACK: AlertState.ACTIVE_ACK,
        AlertState.CLEARED_UNACK: AlertState.CLEARED_ACK,
    }.get(alert.state)
    if target is None:
        raise TransitionError(f"alert is already acknowledged ({alert.state.value})")
    return replace(alert, state=target), Change("ack", actor, at, alert.state, target)


def clear(alert: Alert, actor: str, at: datetime, note: str | None = None) -> tuple[Alert, Change]:
    """Clear an active alert: by the rule (``actor='system'``) or by an operator."""
    target = {
        AlertState.ACTIVE_UNACK: AlertState.CLEARED_UNACK,
        AlertState.ACTIVE_ACK: AlertState.CLEARED_ACK,
    }.get(alert.state)
    if target is None:
        raise TransitionError(f"alert is already cleared ({alert.state.value})")
    return replace(alert, state=target), Change("clear", actor, at, alert.state, target, note)


def assign(alert: Alert, actor: str, assignee: str | None, at: datetime) -> tuple[Alert, Change]:
    note = f"assigned to {assignee}" if assignee else "unassigned"
    return replace(alert, assignee=assignee), Change(
        "assign", actor, at, alert.state, alert.state, note
    )


def comment(alert: Alert, actor: str, text: str, at: datetime) -> Change:
    if not text.strip():
        raise TransitionError("a comment needs text")
    return Change("comment", actor, at, alert.state, alert.state, text.strip())


def escalation_due(alert: Alert, now: datetime, after: timedelta) -> bool:
    """Unacknowledged for ``after`` since it opened or was last escalated."""
    if alert.state is not AlertState.ACTIVE_UNACK:
        return False
    since = alert.last_escalated_at or alert.created_at
    return now - since >= after


def escalate(alert: Alert, at: datetime) -> tuple[Alert, Change]:
    """Raise severity one level (capped at CRITICAL); the caller notifies again."""
    raised = Severity(min(alert.severity + 1, Severity.CRITICAL))
    updated = replace(
        alert, severity=raised, escalations=alert.escalations + 1, last_escalated_at=at
    )
    note = f"unacknowledged: severity {alert.severity.name} -> {raised.name}"
    return updated, Change("escalate", "system", at, alert.state, alert.state, note)
