"""Short-lived signed viewer tickets: a WHEP offer must come from someone who loaded the
tour page (or asked the ticket endpoint) moments ago.

Why: WHEP offers are the expensive call (a peer connection, ICE, DTLS); without a ticket any
script can open peers in a loop from anywhere. The ticket is an HMAC over camera and expiry
with the API's secret (``TP_CAMERA_TICKET_SECRET``; a random one per process when unset,
which is enough for one API process), so checking it needs no storage.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

TICKET_TTL_S = 120.0


class TicketIssuer:
    def __init__(
        self,
        secret: bytes | None = None,
        ttl: float = TICKET_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.ttl, self._clock = ttl, clock

    def _sign(self, camera: str, expires: int) -> str:
        msg = f"{camera}|{expires}".encode()
        mac = hmac.new(self._secret, msg, hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(mac).decode()

    def issue(self, camera: str) -> str:
        expires = int(self._clock() + self.ttl)
        return f"{expires}.{self._sign(camera, expires)}"

    def valid(self, camera: str, ticket: str | None) -> bool:
        if not ticket or "." not in ticket:
            return False
        raw_expires, mac = ticket.split(".", 1)
        if not raw_expires.isdigit() or int(raw_expires) < self._clock():
            return False
        return hmac.compare_digest(self._sign(camera, int(raw_expires)).encode(), mac.encode())
