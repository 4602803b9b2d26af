"""PostgreSQL persistence of the alert lifecycle (tables from migration 0200_alerts.sql).

Every transition runs in one transaction with the alert row locked (``FOR UPDATE``) and
writes its audit entry in the same transaction, so the history can never disagree with
the alert. The rule engine and the API's operator actions both go through this class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from schemas.stream_out import AlertChangedV1, AlertViewV1
from stream.alerts import lifecycle as lc
from stream.alerts.lifecycle import Alert, AlertState, Change, Severity

_ACTIVE = (AlertState.ACTIVE_UNACK.value, AlertState.ACTIVE_ACK.value)
_COLUMNS = (
    "id, incident_id, originator, site, type, severity, state, created_at, last_triggered_at,"
    " updated_at, trigger_count, assignee, details, escalations, last_escalated_at"
)


class AlertNotFound(LookupError):
    pass


@dataclass(frozen=True)
class StoredAlert:
    id: int
    incident_id: int
    updated_at: datetime
    alert: Alert
    change: Change | None = None  # the transition that produced this version, if any

    def view(self) -> AlertViewV1:
        """The public view (API responses, live feeds, notifications): built only here."""
        a = self.alert
        return AlertViewV1(
            id=self.id,
            incident_id=self.incident_id,
            originator=a.originator,
            site=a.site,
            type=a.type,
            severity=a.severity.name,
            state=a.state.value,
            created_at=a.created_at,
            last_triggered_at=a.last_triggered_at,
            updated_at=self.updated_at,
            trigger_count=a.trigger_count,
            assignee=a.assignee,
            escalations=a.escalations,
            details=a.details,
        )

    def changed(self, now: datetime) -> AlertChangedV1:
        """The live-feed message for this version: its transition, else a system update
        at ``now`` (the engine's retrigger without a state change)."""
        change = self.change
        return AlertChangedV1(
            action=change.action if change else "update",
            actor=change.actor if change else "system",
            at=change.at if change else now,
            note=change.note if change else None,
            alert=self.view(),
        )


def _from_row(row: dict[str, Any], change: Change | None = None) -> StoredAlert:
    alert = Alert(
        originator=row["originator"],
        site=row["site"],
        type=row["type"],
        severity=Severity(row["severity"]),
        state=AlertState(row["state"]),
        created_at=row["created_at"],
        last_triggered_at=row["last_triggered_at"],
        trigger_count=row["trigger_count"],
        assignee=row["assignee"],
        details=row["details"] or {},
        escalations=row["escalations"],
        last_escalated_at=row["last_escalated_at"],
    )
    return StoredAlert(row["id"], row["incident_id"], row["updated_at"], alert, change)


class AlertStore:
    def __init__(
        self, pool: AsyncConnectionPool, incident_window: timedelta = timedelta(minutes=15)
    ) -> None:
        self._pool = pool
        #: Alerts at one site within this window of each other form one incident.
        self._incident_window = incident_window

    async def raise_alert(
        self,
        originator: str,
        site: str,
        type_: str,
        severity: Severity,
        at: datetime,
        details: dict[str, Any],
    ) -> StoredAlert:
        """Open an alert, or retrigger the active one for (originator, type)."""
        async with self._pool.connection() as conn, conn.transaction():
            current = await self._active(conn, originator, type_)
            if current is None:
                incident = await self._incident_for(conn, site, at)
                alert, change = lc.open_alert(originator, site, type_, severity, at, details)
                row = await _fetch_one(
                    conn,
                    "INSERT INTO alerts (originator, site, type, severity, state, created_at,"
                    " last_triggered_at, details, incident_id)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (originator, type) WHERE state IN ('ACTIVE_UNACK', 'ACTIVE_ACK')"
                    f" DO NOTHING RETURNING {_COLUMNS}",
                    (
                        originator,
                        site,
                        type_,
                        int(severity),
                        alert.state.value,
                        at,
                        at,
                        json.dumps(details),
                        incident,
                    ),
                )
                if row is not None:
                    stored = _from_row(row, change)
                    await _audit(conn, stored.id, change)
                    return stored
                current = await self._active(conn, originator, type_)  # lost a race
                assert current is not None
            alert, change = lc.retrigger(current.alert, severity, at, details)
            return await self._save(conn, current.id, alert, change)

    async def clear_by_rule(
        self, originator: str, type_: str, at: datetime, note: str | None = None
    ) -> StoredAlert | None:
        """The condition went away: clear the active alert if there is one."""
        async with self._pool.connection() as conn, conn.transaction():
            current = await self._active(conn, originator, type_)
            if current is None:
                return None
            alert, change = lc.clear(current.alert, "system", at, note)
            return await self._save(conn, current.id, alert, change)

    async def act(
        self, alert_id: int, action: str, actor: str, at: datetime, value: str | None = None
    ) -> StoredAlert:
        """Operator action: ``ack``, ``clear``, ``assign`` (value=assignee) or ``comment``.

        Raises :class:`AlertNotFound` or :class:`lifecycle.TransitionError`.
        """
        async with self._pool.connection() as conn, conn.transaction():
            row = await _fetch_one(
                conn, f"SELECT {_COLUMNS} FROM alerts WHERE id = %s FOR UPDATE", (alert_id,)
            )
            if row is None:
                raise AlertNotFound(f"no alert with id {alert_id}")
            current = _from_row(row)
            if action == "ack":
                alert, change = lc.acknowledge(current.alert, actor, at)
            elif action == "clear":
                alert, change = lc.clear(current.alert, actor, at, value)
            elif action == "assign":
                alert, change = lc.assign(current.alert, actor, value, at)
            elif action == "comment":
                alert, change = current.alert, lc.comment(current.alert, actor, value or "", at)
            else:
                raise lc.TransitionError(f"unknown action {action!r}")
            return await self._save(conn, alert_id, alert, change)

    async def escalate_due(self, now: datetime, after: timedelta) -> list[StoredAlert]:
        """Escalate every alert left unacknowledged for ``after``; return them to notify."""
        escalated = []
        async with self._pool.connection() as conn, conn.transaction():
            rows = await _fetch_all(
                conn,
                f"SELECT {_COLUMNS} FROM alerts WHERE state = 'ACTIVE_UNACK'"
                " AND COALESCE(last_escalated_at, created_at) <= %s FOR UPDATE SKIP LOCKED",
                (now - after,),
            )
            for row in rows:
                current = _from_row(row)
                if lc.escalation_due(current.alert, now, after):
                    alert, change = lc.escalate(current.alert, now)
                    escalated.append(await self._save(conn, current.id, alert, change))
        return escalated

    async def get(self, alert_id: int) -> StoredAlert:
        async with self._pool.connection() as conn:
            row = await _fetch_one(
                conn, f"SELECT {_COLUMNS} FROM alerts WHERE id = %s", (alert_id,)
            )
        if row is None:
            raise AlertNotFound(f"no alert with id {alert_id}")
        return _from_row(row)

    async def search(
        self,
        *,
        site: str | None = None,
        states: list[AlertState] | None = None,
        min_severity: Severity | None = None,
        limit: int = 100,
    ) -> list[StoredAlert]:
        where: list[str] = ["TRUE"]
        params: list[Any] = []
        if site:
            where.append("site = %s")
            params.append(site)
        if states:
            where.append("state = ANY(%s)")
            params.append([s.value for s in states])
        if min_severity:
            where.append("severity >= %s")
            params.append(int(min_severity))
        sql = (
            f"SELECT {_COLUMNS} FROM alerts WHERE {' AND '.join(where)}"
            " ORDER BY (state IN ('ACTIVE_UNACK', 'ACTIVE_ACK')) DESC, severity DESC,"
            " updated_at DESC LIMIT %s"
        )
        async with self._pool.connection() as conn:
            rows = await _fetch_all(conn, sql, (*params, limit))
        return [_from_row(r) for r in rows]

    async def history(self, alert_id: int) -> list[Change]:
        async with self._pool.connection() as conn:
            rows = await _fetch_all(
                conn,
                "SELECT action, actor, at, from_state, to_state, note FROM alert_history"
                " WHERE alert_id = %s ORDER BY id",
                (alert_id,),
            )
        return [
            Change(
                r["action"],
                r["actor"],
                r["at"],
                AlertState(r["from_state"]) if r["from_state"] else None,
                AlertState(r["to_state"]),
                r["note"],
            )
            for r in rows
        ]

    async def _active(
        self, conn: AsyncConnection, originator: str, type_: str
    ) -> StoredAlert | None:
        row = await _fetch_one(
            conn,
            f"SELECT {_COLUMNS} FROM alerts WHERE originator = %s AND type = %s"
            " AND state = ANY(%s) FOR UPDATE",
            (originator, type_, list(_ACTIVE)),
        )
        return _from_row(row) if row else None

    async def _incident_for(self, conn: AsyncConnection, site: str, at: datetime) -> int:
        """The site's incident still open within the window, extended; else a new one."""
        row = await _fetch_one(
            conn,
            "UPDATE incidents SET last_alert_at = GREATEST(last_alert_at, %s)"
            " WHERE id = (SELECT id FROM incidents WHERE site = %s AND last_alert_at >= %s"
            " ORDER BY last_alert_at DESC LIMIT 1 FOR UPDATE) RETURNING id",
            (at, site, at - self._incident_window),
        )
        if row is None:
            row = await _fetch_one(
                conn,
                "INSERT INTO incidents (site, opened_at, last_alert_at) VALUES (%s, %s, %s)"
                " RETURNING id",
                (site, at, at),
            )
        assert row is not None
        return int(row["id"])

    async def _save(
        self, conn: AsyncConnection, alert_id: int, alert: Alert, change: Change
    ) -> StoredAlert:
        row = await _fetch_one(
            conn,
            "UPDATE alerts SET severity = %s, state = %s, last_triggered_at = %s,"
            " trigger_count = %s, assignee = %s, details = %s, escalations = %s,"
            f" last_escalated_at = %s, updated_at = now() WHERE id = %s RETURNING {_COLUMNS}",
            (
                int(alert.severity),
                alert.state.value,
                alert.last_triggered_at,
                alert.trigger_count,
                alert.assignee,
                json.dumps(alert.details),
                alert.escalations,
                alert.last_escalated_at,
                alert_id,
            ),
        )
        assert row is not None
        await _audit(conn, alert_id, change)
        return _from_row(row, change)


async def _audit(conn: AsyncConnection, alert_id: int, change: Change) -> None:
    await conn.execute(
        "INSERT INTO alert_history (alert_id, at, actor, action, from_state, to_state, note)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            alert_id,
            change.at,
            change.actor,
            change.action,
            change.from_state.value if change.from_state else None,
            change.to_state.value,
            change.note,
        ),
    )


async def _fetch_one(
    conn: AsyncConnection, sql: str, params: tuple[Any, ...]
) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchone()


async def _fetch_all(
    conn: AsyncConnection, sql: str, params: tuple[Any, ...]
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()
