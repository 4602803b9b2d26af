"""Alert queue, detail with audit trail, and operator actions.

Actions go through :meth:`stream.alerts.store.AlertStore.act` (one transaction with the
audit entry, shared with the engine), then the resulting :class:`AlertChangedV1` is
published to the alert-changes topic, the same one the engine writes, so every console's
live feed shows the action within a second, whichever API replica took it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, Field

from api.errors import ApiError
from api.ioc.auth import IocDep, OperatorDep, ViewerDep
from api.models import ERROR_RESPONSES, ErrorResponse
from schemas.stream_out import AlertViewV1
from stream.alerts.lifecycle import AlertState, Severity, TransitionError
from stream.alerts.store import AlertNotFound, StoredAlert

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

_STATE_GROUPS: dict[str, list[AlertState]] = {
    "active": [AlertState.ACTIVE_UNACK, AlertState.ACTIVE_ACK],
    "cleared": [AlertState.CLEARED_UNACK, AlertState.CLEARED_ACK],
    "unacknowledged": [AlertState.ACTIVE_UNACK, AlertState.CLEARED_UNACK],
    **{s.value: [s] for s in AlertState},
}
AlertId = Annotated[int, Path(ge=1, le=2**62)]


class AuditEntry(BaseModel):
    action: str
    actor: str
    at: datetime
    from_state: str | None
    to_state: str
    note: str | None


class AlertDetail(BaseModel):
    alert: AlertViewV1
    history: list[AuditEntry]


class ActionResult(BaseModel):
    alert: AlertViewV1
    published: bool = Field(
        description="False if Kafka was unreachable: the action is saved, "
        "but other consoles see it only when they reload the queue."
    )


class AssignBody(BaseModel):
    assignee: Annotated[str, Field(max_length=64)] | None = Field(
        description="Username to assign, or null to unassign."
    )


class CommentBody(BaseModel):
    text: Annotated[str, Field(min_length=1, max_length=2000)]


class NoteBody(BaseModel):
    note: Annotated[str, Field(max_length=2000)] | None = None


@router.get("", summary="Alert queue, filtered", responses={422: ERROR_RESPONSES[422]})
async def list_alerts(
    ioc: IocDep,
    _: ViewerDep,
    site: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[
        str | None,
        Query(
            description="active, cleared, unacknowledged, or one of "
            + ", ".join(s.value for s in AlertState)
        ),
    ] = None,
    severity: Annotated[
        str | None,
        Query(description="Minimum severity: WARNING < MINOR < MAJOR < CRITICAL."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, list[AlertViewV1]]:
    """Active first, then by severity and recency (the order an operator works them)."""
    states = None
    if state is not None:
        if state not in _STATE_GROUPS:
            raise ApiError(
                422, "bad_state", f"unknown state {state!r}; use one of " + ", ".join(_STATE_GROUPS)
            )
        states = _STATE_GROUPS[state]
    min_severity = None
    if severity is not None:
        try:
            min_severity = Severity[severity.upper()]
        except KeyError:
            raise ApiError(
                422,
                "bad_severity",
                f"unknown severity {severity!r}; use one of " + ", ".join(s.name for s in Severity),
            ) from None
    found = await ioc.alerts.search(
        site=site, states=states, min_severity=min_severity, limit=limit
    )
    return {"alerts": [a.view() for a in found]}


@router.get("/{alert_id}", response_model=AlertDetail, summary="One alert with its audit trail")
async def get_alert(ioc: IocDep, _: ViewerDep, alert_id: AlertId) -> AlertDetail:
    try:
        stored = await ioc.alerts.get(alert_id)
    except AlertNotFound as exc:
        raise ApiError(404, "alert_not_found", str(exc)) from None
    history = await ioc.alerts.history(alert_id)
    return AlertDetail(
        alert=stored.view(),
        history=[
            AuditEntry(
                action=c.action,
                actor=c.actor,
                at=c.at,
                from_state=c.from_state.value if c.from_state else None,
                to_state=c.to_state.value,
                note=c.note,
            )
            for c in history
        ],
    )


async def _act(
    ioc: IocDep, alert_id: int, action: str, actor: str, value: str | None
) -> ActionResult:
    try:
        stored = await ioc.alerts.act(alert_id, action, actor, datetime.now(UTC), value)
    except AlertNotFound as exc:
        ioc.metrics.actions.labels(action, "not_found").inc()
        raise ApiError(404, "alert_not_found", str(exc)) from None
    except TransitionError as exc:
        ioc.metrics.actions.labels(action, "conflict").inc()
        raise ApiError(409, "invalid_transition", str(exc)) from None
    ioc.metrics.actions.labels(action, "ok").inc()
    return ActionResult(alert=stored.view(), published=await _publish(ioc, stored))


async def _publish(ioc: IocDep, stored: StoredAlert) -> bool:
    change = stored.change
    assert change is not None  # act() always returns the change it made
    message = stored.changed(change.at)
    try:
        await ioc.publisher.publish(message)
    except (KafkaError, TimeoutError, OSError) as exc:
        ioc.metrics.publish_failures.inc()
        log.warning("alert %d %s saved but not published: %s", stored.id, change.action, exc)
        return False
    return True


_ACTION_ERRORS: dict[int | str, dict[str, Any]] = {
    404: ERROR_RESPONSES[404],
    409: {"model": ErrorResponse, "description": "Not valid in the alert's current state."},
}


@router.post(
    "/{alert_id}/ack",
    response_model=ActionResult,
    responses=_ACTION_ERRORS,
    summary="Acknowledge (operator)",
)
async def ack(ioc: IocDep, user: OperatorDep, alert_id: AlertId) -> ActionResult:
    return await _act(ioc, alert_id, "ack", user.username, None)


@router.post(
    "/{alert_id}/clear",
    response_model=ActionResult,
    responses=_ACTION_ERRORS,
    summary="Clear an active alert (operator)",
)
async def clear(
    ioc: IocDep,
    user: OperatorDep,
    alert_id: AlertId,
    body: Annotated[NoteBody | None, Body()] = None,
) -> ActionResult:
    return await _act(ioc, alert_id, "clear", user.username, body.note if body else None)


@router.post(
    "/{alert_id}/assign",
    response_model=ActionResult,
    responses=_ACTION_ERRORS,
    summary="Assign to an operator, or unassign with null (operator)",
)
async def assign(
    ioc: IocDep, user: OperatorDep, alert_id: AlertId, body: AssignBody
) -> ActionResult:
    assignee = body.assignee.strip().lower() if body.assignee else None
    if assignee and await ioc.users.get(assignee) is None:
        raise ApiError(422, "unknown_user", f"no user {assignee!r} to assign to")
    return await _act(ioc, alert_id, "assign", user.username, assignee)


@router.post(
    "/{alert_id}/comment",
    response_model=ActionResult,
    responses=_ACTION_ERRORS,
    summary="Add a comment to the audit trail (operator)",
)
async def comment(
    ioc: IocDep, user: OperatorDep, alert_id: AlertId, body: CommentBody
) -> ActionResult:
    return await _act(ioc, alert_id, "comment", user.username, body.text)
