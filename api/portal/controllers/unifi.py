"""UniFi Network external portal (classic controller API).

The controller redirects the guest to ``/guest/s/<site>/?id=<client mac>&ap=<ap mac>&t=<ts>
&url=<original url>&ssid=<ssid>``. The portal authorises the guest itself: log in to
``/api/login`` and POST ``{"cmd": "authorize-guest", "mac": ..., "minutes": ...}`` to
``/api/s/<site>/cmd/stamgr``. The controller answers ``{"meta": {"rc": "ok"}}`` or an error.
The raw MAC is needed for that call, so it travels only inside the sealed cookie.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from api.portal.controllers.base import Landing
from api.portal.security import MAX_URL, PortalError, bounded, safe_url
from api.portal.settings import PortalSettings

_SITE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: Generous for a controller on a loaded LAN, short enough that the visitor is not left waiting.
TIMEOUT_S = 10.0


class UniFiAdapter:
    name = "unifi"

    def parse(self, params: Mapping[str, str], settings: PortalSettings) -> Landing:
        url = params.get("url")
        unifi_site = params.get("_unifi_site", settings.unifi_site)
        if not _SITE.match(unifi_site):
            raise PortalError("bad_params", 400, "UniFi site id is malformed")
        mac = bounded(params.get("id"), "id", 32)
        ap = bounded(params.get("ap"), "ap", 32, required=False) or None
        bounded(params.get("t"), "t", 32, required=False)
        bounded(params.get("ssid"), "ssid", 64, required=False)
        return Landing(
            controller=self.name,
            client_mac=mac,
            client_ip=None,
            continue_url=safe_url(bounded(url, "url", MAX_URL), settings.continue_hosts)
            if url
            else None,
            grant={"mac": mac, "ap": ap, "site": unifi_site},
            ap=ap,
        )

    async def grant(
        self, grant: Mapping[str, Any], duration_s: int, welcome_url: str, settings: PortalSettings
    ) -> str:
        if not settings.unifi_url:
            raise PortalError("not_configured", 503, "UniFi controller URL is not set")
        base = settings.unifi_url.rstrip("/")
        body: dict[str, Any] = {
            "cmd": "authorize-guest",
            "mac": grant["mac"],
            "minutes": max(1, duration_s // 60),
        }
        if grant.get("ap"):
            body["ap_mac"] = grant["ap"]
        try:
            async with httpx.AsyncClient(
                verify=settings.unifi_verify_tls, timeout=TIMEOUT_S
            ) as client:
                login = await client.post(
                    f"{base}/api/login",
                    json={
                        "username": settings.unifi_username,
                        "password": settings.unifi_password.get_secret_value(),
                    },
                )
                _check(login, "login")
                reply = await client.post(f"{base}/api/s/{grant['site']}/cmd/stamgr", json=body)
                _check(reply, "authorize-guest")
        except httpx.HTTPError as exc:
            raise PortalError("controller_failed", 502, f"UniFi: {type(exc).__name__}") from None
        return welcome_url


def _check(response: httpx.Response, what: str) -> None:
    try:
        rc = response.json().get("meta", {}).get("rc")
    except ValueError:
        rc = None
    if response.status_code != 200 or rc != "ok":
        raise PortalError(
            "controller_failed", 502, f"UniFi {what}: HTTP {response.status_code} rc={rc}"
        )
