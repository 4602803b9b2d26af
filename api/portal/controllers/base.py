"""What every controller adapter takes in and gives back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from api.portal.settings import PortalSettings


@dataclass(frozen=True)
class Landing:
    """A visitor arriving from a controller, before anything is stored.

    ``client_mac`` is raw and lives only in memory (pseudonymised at once) and, if the
    vendor needs it to grant, inside the sealed cookie (``grant``); never in the database.
    """

    controller: str
    client_mac: str | None
    client_ip: str | None
    continue_url: str | None
    grant: dict[str, Any] = field(default_factory=dict)
    ap: str | None = None


class Adapter(Protocol):
    name: str

    def parse(self, params: Mapping[str, str], settings: PortalSettings) -> Landing:
        """Validate the controller's parameters; raise ``PortalError`` on anything wrong."""
        ...

    async def grant(
        self, grant: Mapping[str, Any], duration_s: int, welcome_url: str, settings: PortalSettings
    ) -> str:
        """Let the client online; return where to send the browser next."""
        ...
