"""Rendering helpers shared by the portal's HTML routes: language, context, pages."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from prometheus_client import Counter

from api.portal.i18n import LANGUAGES, TAGS, negotiate, translator
from api.portal.security import PortalError
from api.portal.settings import PortalSettings
from api.portal.state import PortalRuntime

COOKIE = "tp_portal"
REFUSED = Counter("tp_portal_refused_total", "Portal requests refused, by reason", ["reason"])
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self';"
    " form-action *; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def runtime(request: Request) -> PortalRuntime:
    rt: PortalRuntime = request.app.state.portal
    return rt


def language(request: Request, explicit: str | None = None) -> str:
    chosen = explicit or request.query_params.get("lang")
    if chosen in TAGS:
        return str(chosen)
    return negotiate(request.headers.get("accept-language"))


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def render_html(rt: PortalRuntime, template: str, lang: str, **ctx: Any) -> str:
    return rt.templates.get_template(template).render(
        _=translator(lang), lang=lang, languages=LANGUAGES, **ctx
    )


def render(
    request: Request, template: str, lang: str, status: int = 200, **ctx: Any
) -> HTMLResponse:
    html = render_html(runtime(request), template, lang, **ctx)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def error_page(request: Request, err: PortalError, lang: str, site: Any = None) -> HTMLResponse:
    REFUSED.labels(err.key).inc()
    return render(request, "error.html", lang, status=err.status, error=err.key, site=site)


def check_rate(request: Request) -> None:
    if not runtime(request).limiter.allow(client_ip(request)):
        raise PortalError("rate_limited", 429)


def check_origin(request: Request) -> None:
    """Refuse cross-site form posts even if a browser sent the cookie anyway."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = origin.split("://", 1)[-1]
        if host != request.headers.get("host"):
            raise PortalError("csrf", 403, "cross-origin form post")


def absolute(request: Request, portal: PortalSettings, path: str) -> str:
    base = portal.public_url.rstrip("/") if portal.public_url else str(request.base_url).rstrip("/")
    return base + path


def hours(portal: PortalSettings) -> str:
    return f"{portal.session_minutes / 60:g}"
