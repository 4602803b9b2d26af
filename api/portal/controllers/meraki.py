"""Cisco Meraki click-through splash (EXCAP).

Meraki redirects the client to our splash URL with ``base_grant_url``, ``user_continue_url``,
``node_mac``, ``client_ip`` and ``client_mac``. Access is granted by sending the browser to
``base_grant_url?continue_url=...&duration=...``; Meraki then opens the network and forwards
the browser to ``continue_url`` (our welcome page). ``base_grant_url`` must be on an allowed
Meraki host (``*.network-auth.com`` by default), or the portal would be an open redirect.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from api.portal.controllers.base import Landing
from api.portal.security import MAX_URL, PortalError, bounded, safe_url
from api.portal.settings import PortalSettings


class MerakiAdapter:
    name = "meraki"

    def parse(self, params: Mapping[str, str], settings: PortalSettings) -> Landing:
        grant_url = safe_url(
            bounded(params.get("base_grant_url"), "base_grant_url", MAX_URL),
            settings.grant_hosts,
            "base_grant_url",
        )
        if urlsplit(grant_url).query:
            raise PortalError("bad_params", 400, "base_grant_url must not carry a query")
        cont = params.get("user_continue_url")
        return Landing(
            controller=self.name,
            client_mac=bounded(params.get("client_mac"), "client_mac", 32),
            client_ip=bounded(params.get("client_ip"), "client_ip", 45, required=False) or None,
            continue_url=safe_url(cont, settings.continue_hosts, "continue URL") if cont else None,
            grant={"base_grant_url": grant_url},
            ap=bounded(params.get("node_mac"), "node_mac", 32, required=False) or None,
        )

    async def grant(
        self, grant: Mapping[str, Any], duration_s: int, welcome_url: str, settings: PortalSettings
    ) -> str:
        query = urlencode({"continue_url": welcome_url, "duration": duration_s})
        return f"{grant['base_grant_url']}?{query}"
