"""RFC 8908 Captive Portal API and the "direct" flow for networks without a controller.

Phones that learn the API URL (DHCP option 114 / RA, RFC 8910) fetch it and get
``application/captive+json``: ``captive``, ``user-portal-url``, ``venue-info-url``,
``seconds-remaining``, ``can-extend-session``. The API identifies the phone by its source
address, which the portal keeps only as a keyed hash with the grant's expiry. When the
visitor arrives with no controller parameters, the portal itself is the authority: granting
records the expiry the captive API (and an enforcing gateway polling it) reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from api.portal.controllers.base import Landing
from api.portal.security import MAX_URL, bounded, safe_url
from api.portal.settings import PortalSettings

MEDIA_TYPE = "application/captive+json"


def captive_status(
    portal_url: str, venue_url: str, expires: datetime | None, now: datetime
) -> dict[str, Any]:
    """The RFC 8908 section 5 JSON object for one client."""
    remaining = int((expires - now).total_seconds()) if expires else 0
    doc: dict[str, Any] = {"captive": remaining <= 0, "user-portal-url": portal_url}
    doc["venue-info-url"] = venue_url
    if remaining > 0:
        doc["seconds-remaining"] = remaining
        doc["can-extend-session"] = True
    return doc


class DirectAdapter:
    name = "rfc8908"

    def parse(self, params: Mapping[str, str], settings: PortalSettings) -> Landing:
        cont = params.get("continue")
        return Landing(
            controller=self.name,
            client_mac=None,
            client_ip=None,
            continue_url=safe_url(bounded(cont, "continue", MAX_URL), settings.continue_hosts)
            if cont
            else None,
        )

    async def grant(
        self, grant: Mapping[str, Any], duration_s: int, welcome_url: str, settings: PortalSettings
    ) -> str:
        return welcome_url
