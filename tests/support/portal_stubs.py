"""Stub Wi-Fi controllers for the captive-portal tests, and a live portal server.

Each stub follows its vendor's documented contract, because the real controllers are
cloud services (Meraki) or appliances (UniFi) that cannot run here:

- Meraki EXCAP: the product's simulator (:mod:`edge.controller_sim.meraki`, also what
  ``make demo`` runs) mounted on the same server.
- openNDS FAS: the gateway builds the level 1 (base64) or level 2 (AES-256-CBC, double
  base64, 16-char iv) query; ``GET /opennds_auth/?tok=..&redir=..`` authenticates only if
  ``tok == sha256(hid + faskey)`` for a pending client, once.
- UniFi classic API: ``POST /api/login`` sets the ``unifises`` cookie for the right
  credentials; ``POST /api/s/<site>/cmd/stamgr`` with ``authorize-guest`` needs it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import SecretStr

from api.portal.controllers.opennds import encrypt_query
from api.portal.router import lifespan as portal_lifespan
from api.portal.router import router as portal_router
from api.portal.settings import PortalSettings
from edge.controller_sim.meraki import Grant, MerakiSimulator

FASKEY = "a-shared-faskey-for-tests-1234567"
UNIFI_USER, UNIFI_PASS = "portal", "s3cret-pass"
ADMIN_TOKEN = "admin-token-for-tests-0123456789"


@dataclass
class StubControllers:
    port: int
    meraki: MerakiSimulator = field(init=False)
    opennds_pending: dict[str, str] = field(default_factory=dict)  # hid -> client mac
    opennds_authed: list[str] = field(default_factory=list)
    opennds_refused: int = 0
    unifi_authorized: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.meraki = MerakiSimulator(self.base, portal_url="")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def meraki_grants(self) -> list[Grant]:
        return self.meraki.grants

    # --- what each controller sends the phone to ---------------------------------------

    def meraki_landing(self, portal: str, site: str, mac: str, cont: str) -> str:
        return self.meraki.join(site, mac, cont, portal_url=portal)

    def opennds_landing(self, portal: str, site: str, mac: str, level: int, origin: str) -> str:
        hid = hashlib.sha256(secrets.token_bytes(16)).hexdigest()
        self.opennds_pending[hid] = mac
        text = (
            f"clientip=192.168.2.10, clientmac={mac}, client_type=cpd_can, gatewayname=TP-Test,"
            f" version=9.10.0, hid={hid}, gatewayaddress=127.0.0.1:{self.port},"
            " gatewaymac=00:11:22:33:44:55, authdir=opennds_auth,"
            f" originurl={quote(origin, safe='')},"
            " clientif=wlan0"
        )
        if level == 1:
            return f"{portal}/portal/{site}?fas={quote(base64.b64encode(text.encode()).decode())}"
        iv = secrets.token_hex(8)
        return f"{portal}/portal/{site}?fas={quote(encrypt_query(text, iv, FASKEY))}&iv={iv}"

    def unifi_landing(self, portal: str, unifi_site: str, mac: str, url: str) -> str:
        return (
            f"{portal}/guest/s/{unifi_site}/?id={quote(mac)}&ap=f0:9f:c2:00:00:01"
            f"&t=1751328000&url={quote(url, safe='')}&ssid=HCMC%20Free%20WiFi"
        )

    def app(self) -> FastAPI:
        app = FastAPI()
        app.include_router(self.meraki.router())

        @app.get("/original")
        async def original() -> HTMLResponse:
            """Where the visitor was going before the portal (reachable once online)."""
            return HTMLResponse(
                '<!doctype html><html lang="en"><title>Origin</title><h1>Origin</h1>'
            )

        @app.get("/opennds_auth/")
        async def opennds_auth(tok: str = "", redir: str = "") -> Response:
            for hid in list(self.opennds_pending):
                if hashlib.sha256((hid + FASKEY).encode()).hexdigest() == tok:
                    self.opennds_authed.append(self.opennds_pending.pop(hid))
                    return RedirectResponse(redir, status_code=302)
            self.opennds_refused += 1
            return HTMLResponse("<p>openNDS: authentication refused</p>", status_code=403)

        @app.post("/api/login")
        async def unifi_login(request: Request) -> Response:
            body = await request.json()
            if body.get("username") != UNIFI_USER or body.get("password") != UNIFI_PASS:
                return JSONResponse({"meta": {"rc": "error", "msg": "api.err.Invalid"}}, 400)
            resp = JSONResponse({"meta": {"rc": "ok"}, "data": []})
            resp.set_cookie("unifises", "stub-session")
            return resp

        @app.post("/api/s/{site}/cmd/stamgr")
        async def unifi_stamgr(site: str, request: Request) -> Response:
            if request.cookies.get("unifises") != "stub-session":
                return JSONResponse({"meta": {"rc": "error", "msg": "api.err.LoginRequired"}}, 401)
            body = await request.json()
            if body.get("cmd") != "authorize-guest" or "mac" not in body:
                return JSONResponse({"meta": {"rc": "error", "msg": "api.err.InvalidArgs"}}, 400)
            self.unifi_authorized.append({"site": site, **body})
            return JSONResponse({"meta": {"rc": "ok"}, "data": [{"mac": body["mac"]}]})

        return app


def portal_settings(stub_port: int, **overrides: Any) -> PortalSettings:
    values: dict[str, Any] = {
        "secret": SecretStr("test-secret-0123456789abcdef"),
        "admin_tokens": {"ops": SecretStr(ADMIN_TOKEN)},
        "grant_hosts": ["127.0.0.1"],
        "opennds_faskey": SecretStr(FASKEY),
        "opennds_gateways": ["127.0.0.1"],
        "unifi_url": f"http://127.0.0.1:{stub_port}",
        "unifi_username": UNIFI_USER,
        "unifi_password": SecretStr(UNIFI_PASS),
        "unifi_site_map": {"default": "ben-thanh-market"},
        "rate_per_minute": 600,
    }
    values.update(overrides)
    return PortalSettings(**values)


def portal_app(settings: Any, psettings: PortalSettings) -> FastAPI:
    app = FastAPI(lifespan=portal_lifespan)
    app.state.settings = settings
    app.state.portal_settings = psettings
    app.include_router(portal_router)
    return app


@asynccontextmanager
async def serve(app: FastAPI, port: int, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Run ``app`` with uvicorn on host:port for the duration of the block."""
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(60):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("server exited during start-up")
                await asyncio.sleep(0.05)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
