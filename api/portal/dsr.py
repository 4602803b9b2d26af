"""Data-subject requests (Vietnam's Personal Data Protection Law, Decree 356/2025):
request, verification, export (access), erasure, and an audit of every step.

What the portal holds about a person is keyed by a pseudonymous client id (a keyed hash of
the device MAC, under a key that rotates daily), never by name, e-mail or MAC. So:

1. **Request**: the subject asks from the portal on their phone (the sealed session
   cookie names the visit, and so the client id); they get a one-time verification code,
   of which only a hash is stored.
2. **Verification**: the subject contacts the privacy contact with the request number and
   code; a portal admin checks the code (and whatever else the controller's procedure
   requires) and marks the request verified. A MAC is not a credential: an unverified
   request releases nothing.
3. **Export / erasure**: for a verified request, an admin downloads everything held for
   that client id (visits, promos shown and clicked, consents) or erases it.
4. **Audit**: each step is a ``portal_audit`` row (actor, request id), and the request row
   keeps its own timestamps; neither holds the exported data.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from api.portal.admin import ADMIN, Actor
from api.portal.pages import COOKIE, check_rate, runtime
from api.portal.security import PortalError
from api.portal.store import _audit

router = APIRouter(tags=["portal privacy"])

#: What an access request returns, table by table (all keyed by client id or its visits).
EXPORT_QUERIES = {
    "visits": "SELECT portal_session, site, controller, language, created_at, accepted_at,"
    " granted_at, grant_expires FROM portal_visits WHERE client_id = %s ORDER BY created_at",
    "promos_shown": "SELECT i.portal_session, i.promo_id, i.variant, i.shown_at"
    " FROM portal_promo_impressions i JOIN portal_visits v USING (portal_session)"
    " WHERE v.client_id = %s ORDER BY i.shown_at",
    "promo_clicks": "SELECT c.portal_session, c.promo_id, c.variant, c.first_click_at, c.clicks"
    " FROM portal_promo_clicks c JOIN portal_visits v USING (portal_session)"
    " WHERE v.client_id = %s ORDER BY c.first_click_at",
    "consents": "SELECT site, portal_session, purpose, terms_version, notice_version, language,"
    " given_at, withdrawn_at FROM portal_consents WHERE client_id = %s ORDER BY given_at",
}


class DsrIn(BaseModel):
    kind: Literal["access", "erasure"]


class DsrCreated(BaseModel):
    request_id: int
    verification_code: str = Field(
        description="Shown once: give it with the request number to the privacy contact."
    )
    contact: str


class VerifyIn(BaseModel):
    code: Annotated[str, Field(min_length=8, max_length=64)]


def _hash(code: str) -> str:
    return hashlib.sha256(b"tourpulse.dsr.v1\x00" + code.encode()).hexdigest()


@router.post(
    "/api/v1/portal/dsr",
    response_model=DsrCreated,
    status_code=201,
    responses={
        400: {"description": "No current portal session."},
        429: {"description": "Too many requests from this address."},
    },
)
async def create_request(request: Request, body: DsrIn) -> DsrCreated:
    """A data-subject request (access or erasure) for the data of the current portal
    session's device. Needs the portal session cookie; nothing is released until an admin
    has verified the request."""
    rt = runtime(request)
    try:
        check_rate(request)
        ctx = rt.sealer.unseal(request.cookies.get(COOKIE))
    except PortalError as err:
        raise HTTPException(err.status, "open the portal on the device first") from None
    code = secrets.token_urlsafe(12)
    async with rt.pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "INSERT INTO portal_dsr (kind, client_id, site, portal_session, code_hash)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (body.kind, ctx["cid"], ctx["site"], ctx["ps"], _hash(code)),
        )
        row = await cur.fetchone()
        assert row is not None
        await _audit(conn, "subject", "dsr.request", str(row[0]), {"kind": body.kind})
    return DsrCreated(
        request_id=int(row[0]), verification_code=code, contact=rt.portal.privacy_contact
    )


async def _load(request: Request, dsr_id: int) -> dict[str, Any]:
    pool = runtime(request).pool
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM portal_dsr WHERE id = %s", (dsr_id,))
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, f"no data-subject request {dsr_id}")
    return row


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in {"code_hash", "client_id", "portal_session"}}


@router.get(f"{ADMIN}/dsr")
async def list_requests(request: Request, actor: Actor) -> list[dict[str, Any]]:
    """Requests, newest first (without client ids or codes)."""
    pool = runtime(request).pool
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM portal_dsr ORDER BY id DESC LIMIT 500")
        return [_public(r) for r in await cur.fetchall()]


@router.post(f"{ADMIN}/dsr/{{dsr_id}}/verify", responses={404: {}, 409: {}, 422: {}})
async def verify(request: Request, dsr_id: int, body: VerifyIn, actor: Actor) -> dict[str, Any]:
    """Check the code the subject gave; a wrong code rejects the request (audited)."""
    row = await _load(request, dsr_id)
    if row["status"] != "pending":
        raise HTTPException(409, f"request {dsr_id} is {row['status']}")
    ok = hmac.compare_digest(row["code_hash"], _hash(body.code))
    status = "verified" if ok else "rejected"
    async with runtime(request).pool.connection() as conn, conn.transaction():
        await conn.execute(
            "UPDATE portal_dsr SET status = %s, verified_at = now(), verified_by = %s"
            " WHERE id = %s",
            (status, actor, dsr_id),
        )
        await _audit(conn, actor, f"dsr.{status}", str(dsr_id), {})
    if not ok:
        raise HTTPException(422, "wrong verification code: the request is rejected")
    return {"id": dsr_id, "status": status}


async def _verified(request: Request, dsr_id: int, kind: str) -> dict[str, Any]:
    row = await _load(request, dsr_id)
    if row["kind"] != kind:
        raise HTTPException(409, f"request {dsr_id} is an {row['kind']} request")
    if row["status"] not in {"verified", "completed"} or (
        kind == "erasure" and row["status"] == "completed"
    ):
        raise HTTPException(409, f"request {dsr_id} is {row['status']}, not verified")
    return row


@router.get(f"{ADMIN}/dsr/{{dsr_id}}/export", responses={404: {}, 409: {}})
async def export(request: Request, dsr_id: int, actor: Actor) -> dict[str, Any]:
    """Everything held for the request's client id, as JSON (verified access requests)."""
    row = await _verified(request, dsr_id, "access")
    data: dict[str, Any] = {}
    async with runtime(request).pool.connection() as conn, conn.transaction():
        async with conn.cursor(row_factory=dict_row) as cur:
            for name, query in EXPORT_QUERIES.items():
                await cur.execute(query, (row["client_id"],))
                data[name] = await cur.fetchall()
        counts = {k: len(v) for k, v in data.items()}
        await conn.execute(
            "UPDATE portal_dsr SET status = 'completed', completed_at = now(),"
            " completed_by = %s, result = %s WHERE id = %s",
            (actor, Jsonb(counts), dsr_id),
        )
        await _audit(conn, actor, "dsr.export", str(dsr_id), counts)
    return {"request_id": dsr_id, "client_id": row["client_id"], "data": data}


@router.post(f"{ADMIN}/dsr/{{dsr_id}}/erase", responses={404: {}, 409: {}})
async def erase(request: Request, dsr_id: int, actor: Actor) -> dict[str, Any]:
    """Delete every row held for the client id (visits with their promo rows, consents)."""
    row = await _verified(request, dsr_id, "erasure")
    async with runtime(request).pool.connection() as conn, conn.transaction():
        # Wait for landing writes already in flight and hold new ones until this commits:
        # a batch committing between our DELETE's snapshot and our commit kept its rows
        # (CI: a visit and its promo rows written 50 ms after the landing survived). Writes
        # that come after see this erasure and skip the client (PortalStore.land_many).
        # SHARE ROW EXCLUSIVE also queues concurrent erasures instead of deadlocking them.
        await conn.execute("LOCK TABLE portal_visits, portal_consents IN SHARE ROW EXCLUSIVE MODE")
        visits = await conn.execute(
            "DELETE FROM portal_visits WHERE client_id = %s", (row["client_id"],)
        )
        consents = await conn.execute(
            "DELETE FROM portal_consents WHERE client_id = %s", (row["client_id"],)
        )
        counts = {"visits": visits.rowcount, "consents": consents.rowcount}
        await conn.execute(
            "UPDATE portal_dsr SET status = 'completed', completed_at = now(),"
            " completed_by = %s, result = %s WHERE id = %s",
            (actor, Jsonb(counts), dsr_id),
        )
        await _audit(conn, actor, "dsr.erase", str(dsr_id), counts)
    return {"request_id": dsr_id, "erased": counts}
