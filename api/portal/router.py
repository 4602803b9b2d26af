"""The portal's HTML routes: land, accept, welcome, promo click, privacy choices.

Flow: a controller redirects the phone to ``/portal/<site>?<vendor params>`` (UniFi uses
``/guest/s/<unifi site>/``). The adapter validates the params, the MAC is pseudonymised at
once, and the visit context is sealed into a cookie. ``POST /accept`` records consent,
claims the visit's single grant, and hands the browser to the controller's grant step.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.portal import admin, api_routes, dsr
from api.portal.i18n import translator
from api.portal.pages import (
    COOKIE,
    REFUSED,
    SECURITY_HEADERS,
    absolute,
    check_origin,
    check_rate,
    client_ip,
    error_page,
    hours,
    language,
    render,
    render_html,
    runtime,
)
from api.portal.promos import select_cards
from api.portal.security import PortalError
from api.portal.settings import NOTICE_VERSION, TERMS_VERSION
from api.portal.state import PortalRuntime, portal_lifespan
from api.portal.store import Visit
from core.privacy import InvalidMac
from schemas.portal import (
    AccessGrantedData,
    ImpressionData,
    PortalAccessGrantedV1,
    PortalImpressionV1,
    PortalPromoClickV1,
    PortalTermsAcceptedV1,
    PromoClickData,
    PromoRef,
    TermsAcceptedData,
)

router = APIRouter()
#: Picked up by ``api.app`` (feature modules expose ``router`` and optional ``lifespan``).
lifespan = portal_lifespan
router.include_router(api_routes.router)
router.include_router(admin.router)
router.include_router(dsr.router)

Short = Annotated[str | None, Form(max_length=64)]
#: Stands in for the visit's CSRF token in cached splash pages (HTML-escaping leaves it be).
CSRF_SLOT = f"csrf-slot-{uuid.uuid4().hex}"
#: Sites x languages x variant combinations in use stay far below this.
MAX_CACHED_PAGES = 4096


def _now() -> datetime:
    return datetime.now(UTC)


def _visit(rt: PortalRuntime, ctx: Mapping[str, Any], lang: str) -> dict[str, Any]:
    return {
        "client_id": ctx["cid"],
        "portal_session": ctx["ps"],
        "controller": ctx["ctl"],
        "language": lang,
    }


def _visit_row(ctx: Mapping[str, Any]) -> Visit:
    return (ctx["site"], ctx["cid"], ctx.get("iph"), ctx["ctl"], ctx.get("lang", "en"))


def _envelope(rt: PortalRuntime, site: str) -> dict[str, Any]:
    return {
        "site": site,
        "device": rt.portal.device_id,
        "source": "portal",
        "event_time": _now(),
    }


async def _land(
    request: Request, site_id: str, params: Mapping[str, str], adapter: str | None
) -> Response:
    """Render the splash page for a new visit (controller params) or a language switch."""
    rt = runtime(request)
    lang = language(request)
    site = rt.sites.get(site_id)
    try:
        check_rate(request)
        if site is None:
            raise PortalError("not_found", 404)
        ctx: dict[str, Any] | None = None
        if adapter is None and "lang" in params and COOKIE in request.cookies:
            try:
                old = rt.sealer.unseal(request.cookies[COOKIE])
                ctx = old if old.get("site") == site_id else None
            except PortalError:
                ctx = None
        new_visit = ctx is None
        if ctx is None:
            ctx = await _new_visit(request, rt, site_id, params, adapter or "rfc8908", lang)
    except PortalError as err:
        return error_page(request, err, lang, site)
    _ = translator(lang)
    cards = select_cards(await rt.promos(), site, lang, _now(), ctx["ps"], rt.sites, _)
    rt.writer.add(ctx["ps"], _visit_row(ctx), [(c.promo, c.variant) for c in cards])
    if new_visit:
        refs = [PromoRef(promo=c.promo, variant=c.variant) for c in cards]
        rt.emit(
            PortalImpressionV1(
                **_envelope(rt, site_id), data=ImpressionData(**_visit(rt, ctx, lang), promos=refs)
            )
        )
    key = (site_id, lang, tuple((c.promo, c.variant) for c in cards))
    page = rt.pages.get(key)
    if page is None:
        page = render_html(
            rt,
            "splash.html",
            lang,
            site=site,
            site_name=site.name_vi if lang == "vi" else site.name_en,
            cards=cards,
            csrf=CSRF_SLOT,
            hours=hours(rt.portal),
            contact=rt.portal.privacy_contact,
            error=None,
        )
        if len(rt.pages) >= MAX_CACHED_PAGES:
            rt.pages.clear()
        rt.pages[key] = page
    html = page.replace(CSRF_SLOT, rt.sealer.csrf_token(ctx["ps"]), 1)
    response = HTMLResponse(html, headers=SECURITY_HEADERS)
    if new_visit:
        response.set_cookie(
            COOKIE,
            rt.sealer.seal(ctx, rt.portal.context_ttl_s + rt.portal.session_minutes * 60),
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
    return response


async def _new_visit(
    request: Request,
    rt: PortalRuntime,
    site_id: str,
    params: Mapping[str, str],
    adapter: str,
    lang: str,
) -> dict[str, Any]:
    landing = rt.adapters[adapter].parse(params, rt.portal)
    ip = landing.client_ip or client_ip(request)
    if landing.client_mac is not None:
        try:
            client_id = rt.pseudonymiser.client_id(landing.client_mac)
        except InvalidMac:
            raise PortalError("bad_params", 400, "client MAC is malformed") from None
    else:
        client_id = rt.keyed("ip:" + ip)  # no MAC (RFC 8908 direct): the address, keyed
    return {
        "ps": uuid.uuid4().hex,
        "iph": rt.keyed(ip),
        "site": site_id,
        "ctl": adapter,
        "cid": client_id,
        "grant": landing.grant,
        "cont": landing.continue_url,
        "lang": lang,
    }


def _controller_of(params: Mapping[str, str]) -> str | None:
    if "base_grant_url" in params:
        return "meraki"
    if "fas" in params:
        return "opennds"
    return None


@router.get("/portal/{site_id}", include_in_schema=False)
async def splash(request: Request, site_id: str) -> Response:
    params = dict(request.query_params)
    return await _land(request, site_id, params, _controller_of(params))


@router.get("/guest/s/{unifi_site}/", include_in_schema=False)
async def unifi_landing(request: Request, unifi_site: str) -> Response:
    rt = runtime(request)
    site_id = rt.portal.unifi_site_map.get(unifi_site, unifi_site)
    params = {**request.query_params, "_unifi_site": unifi_site}
    return await _land(request, site_id, params, "unifi" if "id" in params else None)


@router.post("/portal/{site_id}/accept", include_in_schema=False)
async def accept(
    request: Request,
    site_id: str,
    csrf: Annotated[str | None, Form(max_length=128)] = None,
    terms: Short = None,
    marketing: Short = None,
    lang: Short = None,
) -> Response:
    rt = runtime(request)
    chosen = language(request, lang)
    site = rt.sites.get(site_id)
    try:
        ctx = _posted_context(request, rt, csrf, for_site=site_id)
        if terms != "yes":
            raise PortalError("terms_required", 400)
        await rt.store.ensure_visit(ctx["ps"], _visit_row(ctx))
        purposes = ["network_access"] + (["marketing"] if marketing == "yes" else [])
        if await rt.store.accept_terms(ctx["ps"], purposes, TERMS_VERSION, NOTICE_VERSION, chosen):
            data = TermsAcceptedData(
                **_visit(rt, ctx, chosen),
                terms_version=TERMS_VERSION,
                notice_version=NOTICE_VERSION,
                marketing_consent=marketing == "yes",
            )
            rt.emit(PortalTermsAcceptedV1(**_envelope(rt, site_id), data=data))
        duration = rt.portal.session_minutes * 60
        if not await rt.store.claim_grant(ctx["ps"], _now() + timedelta(seconds=duration)):
            raise PortalError("already_granted", 409)
        welcome = absolute(request, rt.portal, f"/portal/{site_id}/welcome?lang={chosen}")
        try:
            target = await rt.adapters[ctx["ctl"]].grant(ctx["grant"], duration, welcome, rt.portal)
        except PortalError:
            await rt.store.release_grant(ctx["ps"])
            raise
    except PortalError as err:
        return error_page(request, err, chosen, site)
    grant_data = AccessGrantedData(**_visit(rt, ctx, chosen), duration_s=duration)
    rt.emit(PortalAccessGrantedV1(**_envelope(rt, site_id), data=grant_data))
    return RedirectResponse(target, status_code=303)


def _posted_context(
    request: Request, rt: PortalRuntime, csrf: str | None, *, for_site: str | None = None
) -> dict[str, Any]:
    """The sealed visit behind a form post, after the checks every post needs: rate limit,
    same origin, a valid cookie (of ``for_site``, a known site, when given) and its CSRF token.

    Raises :class:`PortalError`; one place, so no post can skip a check."""
    check_rate(request)
    check_origin(request)
    ctx = rt.sealer.unseal(request.cookies.get(COOKIE))
    if for_site is not None and (rt.sites.get(for_site) is None or ctx.get("site") != for_site):
        raise PortalError("session_invalid", 400)
    rt.sealer.check_csrf(ctx["ps"], csrf)
    return ctx


def _ctx_or_none(request: Request, site_id: str | None = None) -> dict[str, Any] | None:
    try:
        ctx = runtime(request).sealer.unseal(request.cookies.get(COOKIE))
    except PortalError:
        return None
    return ctx if site_id is None or ctx.get("site") == site_id else None


@router.get("/portal/{site_id}/welcome", include_in_schema=False)
async def welcome(request: Request, site_id: str) -> Response:
    rt = runtime(request)
    lang = language(request)
    site = rt.sites.get(site_id)
    if site is None:
        return error_page(request, PortalError("not_found", 404), lang)
    ctx = _ctx_or_none(request, site_id)
    cards = []
    if ctx is not None:
        all_cards = select_cards(
            await rt.promos(), site, lang, _now(), ctx["ps"], rt.sites, translator(lang)
        )
        cards = [c for c in all_cards if c.kind != "attraction" or c.distance_km is not None]
        rt.writer.add(ctx["ps"], _visit_row(ctx), [(c.promo, c.variant) for c in cards])
    return render(
        request,
        "welcome.html",
        lang,
        site=site,
        cards=cards,
        continue_url=ctx.get("cont") if ctx else None,
    )


@router.get("/portal/go/{promo_id}", include_in_schema=False)
async def promo_click(request: Request, promo_id: str) -> Response:
    rt = runtime(request)
    lang = language(request)
    promo = next((p for p in await rt.promos() if p.id == promo_id), None)
    if promo is None or len(promo_id) > 64:
        return error_page(request, PortalError("not_found", 404), lang)
    ctx = _ctx_or_none(request)
    with contextlib.suppress(Exception):  # a failed flush is counted by the writer
        await rt.writer.flush()  # the impression may still be buffered
    variant = await rt.store.record_click(ctx["ps"], promo_id) if ctx else None
    if ctx is not None and variant is not None:
        data = PromoClickData(
            **_visit(rt, ctx, lang), clicked=PromoRef(promo=promo_id, variant=variant)
        )
        rt.emit(PortalPromoClickV1(**_envelope(rt, ctx["site"]), data=data))
    else:
        REFUSED.labels("click_not_shown").inc()  # counted, still redirected
    return RedirectResponse(promo.url or "/", status_code=303)


@router.get("/portal/{site_id}/privacy", include_in_schema=False)
async def privacy(request: Request, site_id: str, withdrawn: int = 0) -> Response:
    rt = runtime(request)
    lang = language(request)
    site = rt.sites.get(site_id)
    if site is None:
        return error_page(request, PortalError("not_found", 404), lang)
    ctx = _ctx_or_none(request, site_id)
    records = await rt.store.consents(ctx["ps"]) if ctx else []
    return render(
        request,
        "privacy.html",
        lang,
        site=site,
        records=records,
        withdrawn=bool(withdrawn),
        can_withdraw=any(r["purpose"] == "marketing" and not r["withdrawn_at"] for r in records),
        csrf=rt.sealer.csrf_token(ctx["ps"]) if ctx else "",
        contact=rt.portal.privacy_contact,
    )


@router.post("/portal/{site_id}/consent/withdraw", include_in_schema=False)
async def withdraw(
    request: Request,
    site_id: str,
    csrf: Annotated[str | None, Form(max_length=128)] = None,
    purpose: Short = None,
    lang: Short = None,
) -> Response:
    rt = runtime(request)
    chosen = language(request, lang)
    site = rt.sites.get(site_id)
    try:
        ctx = _posted_context(request, rt, csrf)
        if site is None or purpose not in ("marketing", "network_access"):
            raise PortalError("bad_params", 400)
        await rt.store.withdraw(ctx["ps"], purpose)
    except PortalError as err:
        return error_page(request, err, chosen, site)
    return RedirectResponse(f"/portal/{site_id}/privacy?lang={chosen}&withdrawn=1", 303)
