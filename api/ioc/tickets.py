"""Short-lived, single-use stream tickets: what goes in an EventSource/WebSocket URL.

Browsers cannot set ``Authorization`` on EventSource, so the console used to put its
8-hour JWT in ``?access_token=``, where every proxy and access log could copy it. A
ticket is minted from a valid session (``POST /api/v1/auth/stream-ticket``), lives
:data:`TICKET_TTL_S` seconds, is accepted once, and is good for nothing but opening a
stream. It carries the session's own expiry, so periodic re-authorisation of the stream
ends it when the session would have ended (or earlier, on revocation).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import jwt

ALGORITHM = "HS256"
ISSUER = "tourpulse-ioc"
AUDIENCE = "tourpulse-stream"
#: Long enough to open a stream after fetching the ticket, short enough to be useless later.
TICKET_TTL_S = 60
#: Most unexpired ticket ids remembered (one per stream opened in the last minute).
MAX_REMEMBERED = 100_000


class TicketError(ValueError):
    """Invalid, expired or already used ticket (message is user-facing)."""


@dataclass(frozen=True)
class StreamGrant:
    """Who a stream belongs to and until when the session behind it is valid."""

    username: str
    issued_at: float
    session_expires: float


@dataclass
class TicketBook:
    secret: str
    _used: OrderedDict[str, float] = field(default_factory=OrderedDict, init=False)

    def issue(self, username: str, session_expires: float) -> str:
        now = time.time()
        claims = {
            "sub": username,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": int(now + TICKET_TTL_S),
            "jti": secrets.token_urlsafe(16),
            "sx": int(session_expires),
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def redeem(self, ticket: str) -> StreamGrant:
        """The grant of a valid, unused ticket (which is then spent)."""
        try:
            claims = jwt.decode(
                ticket,
                self.secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                audience=AUDIENCE,
                options={"require": ["sub", "exp", "iat", "iss", "aud", "jti", "sx"]},
            )
        except jwt.ExpiredSignatureError:
            raise TicketError("the stream ticket expired; fetch a new one") from None
        except jwt.PyJWTError:
            raise TicketError("invalid stream ticket") from None
        now = time.time()
        while self._used and next(iter(self._used.values())) < now:
            self._used.popitem(last=False)
        jti = str(claims["jti"])
        if jti in self._used:
            raise TicketError("this stream ticket was already used")
        self._used[jti] = float(claims["exp"])
        while len(self._used) > MAX_REMEMBERED:
            self._used.popitem(last=False)
        return StreamGrant(str(claims["sub"]), float(claims["iat"]), float(claims["sx"]))
