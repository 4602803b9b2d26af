"""JSON endpoints: the RFC 8908 captive API and the promo funnel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from api.portal.admin import Actor
from api.portal.controllers.rfc8908 import MEDIA_TYPE, captive_status
from api.portal.funnel import funnel
from api.portal.pages import absolute, client_ip, runtime

router = APIRouter(prefix="/api/v1/portal", tags=["portal"])


@router.get("/captive/{site_id}", response_class=JSONResponse)
async def captive(request: Request, site_id: str) -> Response:
    """RFC 8908 API for the phone asking; identified by its address (kept only hashed)."""
    rt = runtime(request)
    if site_id not in rt.sites:
        raise HTTPException(404, f"unknown site {site_id!r}")
    now = datetime.now(UTC)
    expires = await rt.store.grant_expiry(site_id, rt.keyed(client_ip(request)))
    doc = captive_status(
        absolute(request, rt.portal, f"/portal/{site_id}"),
        absolute(request, rt.portal, f"/portal/{site_id}/welcome"),
        expires,
        now,
    )
    return JSONResponse(doc, media_type=MEDIA_TYPE, headers={"Cache-Control": "private, no-store"})


#: Longest funnel window one request may ask for (each visit row is joined with Wi-Fi
#: sessions; an unbounded range is a heavy query anyone could repeat).
MAX_FUNNEL_DAYS = 92


@router.get(
    "/funnel",
    responses={
        401: {"description": "Admin bearer token required."},
        404: {"description": "Unknown site."},
    },
)
async def funnel_report(
    request: Request,
    _: Actor,
    site: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Per-promo and per-variant funnel (default: the last 7 days, at most 92 days).
    Business data: needs a portal admin bearer token."""
    rt = runtime(request)
    if site is not None and site not in rt.sites:
        raise HTTPException(404, f"unknown site {site!r}")
    end = until or datetime.now(UTC) + timedelta(minutes=1)
    start = since or end - timedelta(days=7)
    if start.tzinfo is None or end.tzinfo is None:
        raise HTTPException(422, "since/until need a time zone (e.g. 2025-07-01T00:00:00Z)")
    if start >= end:
        raise HTTPException(422, "since must be before until")
    if end - start > timedelta(days=MAX_FUNNEL_DAYS):
        raise HTTPException(422, f"the range may span at most {MAX_FUNNEL_DAYS} days")
    return await funnel(rt.pool, start, end, site)
