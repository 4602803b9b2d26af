"""A simulated Cisco Meraki click-through (EXCAP) network, for the demo and the tests.

Meraki is a cloud service, so nothing here can talk to a real one. This follows the
documented EXCAP contract closely enough that the portal's Meraki adapter cannot tell:

- A phone joining the SSID (``GET /connect/<site>``) is redirected to the splash URL with
  ``base_grant_url``, ``user_continue_url``, ``node_mac``, ``client_ip`` and ``client_mac``
  (a random locally administered MAC, as modern phones use per network).
- ``GET <base_grant_url>?continue_url=..&duration=..`` opens the network for that client
  and 302-redirects to ``continue_url``.

Real Meraki knows the client behind a grant request by its connection; here every phone is
on 127.0.0.1, so each join gets its own ``base_grant_url`` path (``/splash/<token>/grant``).
The raw MACs it makes up stay in this process's memory, like a controller's client table.
"""

from __future__ import annotations

import html
import logging
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

log = logging.getLogger(__name__)

JOINS = Counter("tp_controller_sim_joins_total", "Simulated phones that joined the SSID")
GRANTS = Counter("tp_controller_sim_grants_total", "Grants the simulated controller honoured")
REFUSED = Counter("tp_controller_sim_refused_total", "Grant or join requests refused", ["reason"])
#: A joined phone that never finishes the splash is forgotten after this many newer joins.
MAX_PENDING = 10_000
_SITE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def random_client_mac() -> str:
    """A random unicast, locally administered MAC (what a phone shows a new network)."""
    raw = bytearray(secrets.token_bytes(6))
    raw[0] = (raw[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


@dataclass(frozen=True)
class Client:
    site: str
    mac: str
    ip: str


@dataclass(frozen=True)
class Grant:
    site: str
    client_mac: str
    continue_url: str
    duration: str
    at: float = field(default_factory=time.time)


@dataclass
class MerakiSimulator:
    """State and routes of one simulated Meraki network serving ``base_url``.

    ``portal_url`` is the splash page's base (``<portal_url>/portal/<site>``);
    ``sites``, when given, limits which sites phones can join.
    """

    base_url: str
    portal_url: str
    sites: frozenset[str] | None = None
    node_mac: str = "88:15:44:aa:bb:cc"
    grants: list[Grant] = field(default_factory=list)
    _pending: OrderedDict[str, Client] = field(default_factory=OrderedDict)

    def join(
        self,
        site: str,
        client_mac: str | None = None,
        continue_url: str | None = None,
        portal_url: str | None = None,
        lang: str | None = None,
    ) -> str:
        """A phone associates: remember it and return the splash URL Meraki redirects it to."""
        token = secrets.token_urlsafe(12)
        ip = f"10.0.{secrets.randbelow(250)}.{2 + secrets.randbelow(250)}"
        client = Client(site, client_mac or random_client_mac(), ip)
        self._pending[token] = client
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        JOINS.inc()
        query = {
            "base_grant_url": f"{self.base_url}/splash/{token}/grant",
            "user_continue_url": continue_url or f"{self.base_url}/internet",
            "node_mac": self.node_mac,
            "client_ip": client.ip,
            "client_mac": client.mac,
        }
        if lang:  # a demo convenience; a real phone's language arrives as Accept-Language
            query["lang"] = lang
        return f"{(portal_url or self.portal_url).rstrip('/')}/portal/{site}?{urlencode(query)}"

    def grant(self, token: str, continue_url: str, duration: str) -> Grant | None:
        """Open the network for the client behind ``token``; None if the request is bad."""
        client = self._pending.get(token)
        if client is None:
            REFUSED.labels("unknown_client").inc()
            return None
        if urlsplit(continue_url).scheme not in ("http", "https") or not duration.isdigit():
            REFUSED.labels("bad_params").inc()
            return None
        done = Grant(client.site, client.mac, continue_url, duration)
        self.grants.append(done)
        GRANTS.inc()
        log.info("granted a client at %s for %s s", client.site, duration)
        return done

    def router(self) -> APIRouter:
        router = APIRouter()

        @router.get("/connect/{site}")
        async def connect(
            site: str,
            mac: str | None = None,
            lang: str | None = None,
            continue_url: str | None = None,
        ) -> Response:
            """A phone joins the SSID at ``site`` and opens any web page."""
            if not _SITE.match(site) or (self.sites is not None and site not in self.sites):
                REFUSED.labels("unknown_site").inc()
                return _page("Unknown site", f"No simulated network at {site!r}.", 404)
            if mac is not None and not _MAC.match(mac.lower()):
                REFUSED.labels("bad_params").inc()
                return _page("Bad MAC", "mac must look like 02:11:22:33:44:55.", 400)
            if lang is not None and not re.fullmatch(r"[A-Za-z-]{2,8}", lang):
                lang = None
            target = self.join(site, mac.lower() if mac else None, continue_url, lang=lang)
            return RedirectResponse(target, status_code=302)

        @router.get("/splash/{token}/grant")
        async def splash_grant(token: str, continue_url: str = "", duration: str = "") -> Response:
            done = self.grant(token, continue_url, duration)
            if done is None:
                return _page("Access refused", "This network does not know you.", 403)
            response = _page("You're online", "Meraki opened the network for you.", 302)
            response.headers["location"] = continue_url
            return response

        @router.get("/internet")
        async def internet() -> HTMLResponse:
            """The page the phone wanted before the portal (the simulated internet)."""
            return _page("You're online", "This page stands in for the rest of the internet.")

        @router.get("/healthz")
        async def healthz() -> JSONResponse:
            return JSONResponse(
                {"ok": True, "pending": len(self._pending), "grants": len(self.grants)}
            )

        @router.get("/metrics")
        async def metrics() -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

        @router.get("/")
        async def index() -> HTMLResponse:
            links = "".join(
                f'<li>{html.escape(s)}: <a href="/connect/{s}?lang=vi">vi</a>'
                f' <a href="/connect/{s}?lang=en">en</a></li>'
                for s in sorted(self.sites or ())
            )
            return _page("Simulated Meraki network", f"Join the Wi-Fi at:</p><ul>{links}</ul><p>")

        return router

    def app(self) -> FastAPI:
        app = FastAPI(title="Simulated Meraki click-through network", docs_url=None, redoc_url=None)
        app.include_router(self.router())
        return app


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><meta name="viewport" content="width=device-width">'
        f"<title>{html.escape(title)}</title><h1>{html.escape(title)}</h1><p>{body}</p></html>",
        status_code=status,
    )
