"""Admin API for promos: bearer-token authenticated, every change audit-logged.

Tokens are configured per actor (``TP_PORTAL_ADMIN_TOKENS='{"ops": "..."}'``) so the audit
log says who changed what; with no tokens configured the admin API refuses everyone.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from api.portal.i18n import TAGS
from api.portal.images import MAX_UPLOAD_BYTES, ImageRejected, image_path, store_image
from api.portal.pages import runtime
from api.portal.security import PortalError, safe_url

router = APIRouter(tags=["portal-admin"])
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
ShortText = Annotated[str, StringConstraints(max_length=120)]


class PromoText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: ShortText = ""
    body: Annotated[str, StringConstraints(max_length=300)] = ""


class PromoIn(BaseModel):
    """A promo as the admin writes it; variant → language → texts."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["attraction", "event", "app"]
    variants: dict[
        Annotated[str, StringConstraints(pattern=r"^[a-z0-9]{1,16}$")], dict[str, PromoText]
    ] = Field(min_length=1, max_length=4)
    url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    site_ref: Slug | None = None
    sites: list[Slug] = Field(default_factory=list, max_length=100)
    languages: list[str] = Field(default_factory=list, max_length=5)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    priority: int = Field(default=0, ge=-1000, le=1000)
    active: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                safe_url(v, [], "promo url")
            except PortalError as err:
                raise ValueError(err.detail) from None
        return v

    @field_validator("languages")
    @classmethod
    def _langs(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x not in TAGS]
        if bad:
            raise ValueError(f"unsupported languages {bad}; use {list(TAGS)}")
        return v


def admin_actor(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        for actor, secret in runtime(request).portal.admin_tokens.items():
            if hmac.compare_digest(secret.get_secret_value().encode(), token.encode()):
                return actor
    raise HTTPException(401, "admin bearer token required", {"WWW-Authenticate": "Bearer"})


Actor = Annotated[str, Depends(admin_actor)]
ADMIN = "/api/v1/portal/admin"


@router.get(f"{ADMIN}/promos")
async def list_promos(request: Request, actor: Actor) -> list[dict[str, Any]]:
    return await runtime(request).store.promo_rows()


@router.put(f"{ADMIN}/promos/{{promo_id}}")
async def put_promo(
    request: Request, promo_id: Slug, body: PromoIn, actor: Actor
) -> dict[str, Any]:
    rt = runtime(request)
    if body.site_ref is not None and body.site_ref not in rt.sites:
        raise HTTPException(422, f"unknown site_ref {body.site_ref!r}")
    unknown = [s for s in body.sites if s not in rt.sites]
    if unknown:
        raise HTTPException(422, f"unknown sites {unknown}")
    if body.starts_at and body.ends_at and body.starts_at >= body.ends_at:
        raise HTTPException(422, "starts_at must be before ends_at")
    row = {"id": promo_id, **body.model_dump(mode="python")}
    row["variants"] = {
        k: {lang: t.model_dump() for lang, t in v.items()} for k, v in body.variants.items()
    }
    row["image"] = next((p.image for p in await rt.store.promos() if p.id == promo_id), None)
    await rt.store.upsert_promo(row, actor, "upsert")
    rt.invalidate_promos()
    return {"id": promo_id, "status": "saved"}


@router.delete(f"{ADMIN}/promos/{{promo_id}}")
async def delete_promo(request: Request, promo_id: Slug, actor: Actor) -> dict[str, str]:
    rt = runtime(request)
    if not await rt.store.delete_promo(promo_id, actor):
        raise HTTPException(404, f"no promo {promo_id!r}")
    rt.invalidate_promos()
    return {"id": promo_id, "status": "deleted"}


@router.put(f"{ADMIN}/promos/{{promo_id}}/image")
async def put_image(request: Request, promo_id: Slug, actor: Actor) -> dict[str, str]:
    """Raw image bytes as the body (JPEG, PNG, WebP...); resized and cached."""
    rt = runtime(request)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"image larger than {MAX_UPLOAD_BYTES} bytes")
    try:
        image_id = store_image(bytes(data), rt.image_dir)
    except ImageRejected as exc:
        raise HTTPException(422, str(exc)) from None
    if not await rt.store.set_image(promo_id, image_id, actor):
        raise HTTPException(404, f"no promo {promo_id!r}")
    rt.invalidate_promos()
    return {"id": promo_id, "image": image_id}


@router.get(f"{ADMIN}/audit")
async def audit(request: Request, actor: Actor) -> list[dict[str, Any]]:
    return await runtime(request).store.audit_log()


@router.get("/portal/img/{name}", include_in_schema=False)
async def image(request: Request, name: str) -> Response:
    path = image_path(name, runtime(request).image_dir)
    if path is None:
        raise HTTPException(404, "no such image")
    return FileResponse(
        path,
        media_type="image/webp",
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )
