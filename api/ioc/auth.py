"""OAuth2 password flow with JWT access tokens, and the role checks routes depend on.

Tokens are HS256 JWTs (PyJWT) carrying the username; the role is read from the database
on every request rather than trusted from the token, and tokens issued before the user's
``tokens_valid_after`` (password change, role change, disable) are refused, so revoking
an operator takes effect at once instead of at token expiry.

Logins are throttled per client IP and backed off per username
(:mod:`api.security.throttle`); streams are opened with a short-lived ticket instead of
the JWT in the URL (:mod:`api.ioc.tickets`) and re-authorised while they run.
"""

from __future__ import annotations

import math
import time
from typing import Annotated

import jwt
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel
from starlette.requests import HTTPConnection

from api.errors import ApiError
from api.ioc.state import IocState, get_ioc
from api.ioc.tickets import TICKET_TTL_S, StreamGrant, TicketError
from api.ioc.users import Role, User
from api.security.hashing import HashingBusy

ALGORITHM = "HS256"
ISSUER = "tourpulse-ioc"
TOKEN_URL = "/api/v1/auth/token"

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)

IocDep = Annotated[IocState, Depends(get_ioc)]


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    username: str
    role: Role


class StreamTicket(BaseModel):
    ticket: str
    expires_in: int


class Me(BaseModel):
    username: str
    role: Role


def issue_token(ioc: IocState, user: User) -> Token:
    now = time.time()
    claims = {
        "sub": user.username,
        "iss": ISSUER,
        "iat": now,
        "exp": int(now + ioc.settings.token_ttl_s),
    }
    token = jwt.encode(claims, ioc.secret, algorithm=ALGORITHM)
    return Token(
        access_token=token,
        expires_in=ioc.settings.token_ttl_s,
        username=user.username,
        role=user.role,
    )


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def _claims(ioc: IocState, token: str | None) -> dict[str, object]:
    if not token:
        raise _unauthorized("log in first: no bearer token")
    try:
        return dict(
            jwt.decode(
                token,
                ioc.secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["sub", "exp", "iat", "iss"]},
            )
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorized("the session expired; log in again") from None
    except jwt.PyJWTError:
        raise _unauthorized("invalid token") from None


async def authorise(ioc: IocState, grant: StreamGrant) -> User:
    """The user behind ``grant`` if it still stands: account enabled, not revoked since the
    grant was issued, session not expired. Re-run periodically on long-lived streams."""
    if time.time() >= grant.session_expires:
        raise _unauthorized("the session expired; log in again")
    user = await ioc.users.get(grant.username)
    if user is None or user.disabled:
        raise _unauthorized("this account no longer exists or is disabled")
    if grant.issued_at < user.tokens_valid_after.timestamp():
        raise _unauthorized("the token was revoked (password or role changed); log in again")
    return user


def _grant(claims: dict[str, object]) -> StreamGrant:
    return StreamGrant(str(claims["sub"]), float(str(claims["iat"])), float(str(claims["exp"])))


async def user_from_token(ioc: IocState, token: str | None) -> User:
    return await authorise(ioc, _grant(_claims(ioc, token)))


def _bearer_of(connection: HTTPConnection) -> str | None:
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    return value if scheme.lower() == "bearer" and value else None


async def stream_grant(
    ioc: IocState, connection: HTTPConnection, ticket: str | None
) -> StreamGrant:
    """A bearer header (scripts) or a one-time ``ticket`` (browsers), checked now."""
    bearer = _bearer_of(connection)
    if bearer:
        grant = _grant(_claims(ioc, bearer))
    elif ticket:
        try:
            grant = ioc.tickets.redeem(ticket)
        except TicketError as exc:
            raise _unauthorized(str(exc)) from None
    else:
        raise _unauthorized("log in first: no bearer token or stream ticket")
    await authorise(ioc, grant)
    return grant


async def current_user(ioc: IocDep, token: Annotated[str | None, Depends(_bearer)] = None) -> User:
    return await user_from_token(ioc, token)


async def stream_user(
    request: Request,
    ioc: IocDep,
    ticket: Annotated[
        str | None,
        Query(
            max_length=2048,
            description="One-time stream ticket from POST /api/v1/auth/stream-ticket, for "
            "EventSource/WebSocket clients, which cannot send headers.",
        ),
    ] = None,
) -> StreamGrant:
    """Header or ``?ticket=`` (browsers' EventSource cannot set Authorization)."""
    return await stream_grant(ioc, request, ticket)


def require(role: Role) -> object:
    """Dependency: the logged-in user, if their role is at least ``role`` (else 403)."""

    async def check(user: Annotated[User, Depends(current_user)]) -> User:
        if not user.role.allows(role):
            raise ApiError(
                403, "forbidden", f"this needs the {role.value} role (you are {user.role.value})"
            )
        return user

    return Depends(check)


ViewerDep = Annotated[User, require(Role.VIEWER)]
OperatorDep = Annotated[User, require(Role.OPERATOR)]
AdminDep = Annotated[User, require(Role.ADMIN)]


@router.post(
    "/token",
    response_model=Token,
    summary="Log in (OAuth2 password flow)",
    responses={
        401: {"description": "Wrong username or password."},
        429: {"description": "Too many attempts from this address or for this user."},
        503: {"description": "Too many logins in progress; retry shortly."},
    },
)
async def login(
    request: Request,
    ioc: IocDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
) -> Token:
    """Form fields `username` and `password` (as `application/x-www-form-urlencoded`, the
    OAuth2 password grant); returns a bearer token for `Authorization: Bearer ...`.
    Attempts are limited per client address and backed off per username (429 with
    `Retry-After`)."""
    username = username.strip().lower()
    ip = request.client.host if request.client else "unknown"
    wait = ioc.throttle.retry_after(ip, username)
    if wait > 0:
        ioc.metrics.logins.labels("throttled").inc()
        raise ApiError(
            429,
            "too_many_attempts",
            "too many login attempts; wait before trying again",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    try:
        user = await ioc.users.authenticate(username, password)
    except HashingBusy:
        ioc.metrics.logins.labels("busy").inc()
        raise ApiError(
            503, "busy", "too many logins in progress; retry shortly", headers={"Retry-After": "2"}
        ) from None
    if user is None:
        ioc.throttle.failed(username)
        ioc.metrics.logins.labels("failed").inc()
        raise _unauthorized("wrong username or password")
    ioc.throttle.succeeded(username)
    ioc.metrics.logins.labels("ok").inc()
    return issue_token(ioc, user)


@router.post(
    "/stream-ticket",
    response_model=StreamTicket,
    summary="A one-time ticket to open a live stream",
    responses={401: {"description": "No valid session."}},
)
async def stream_ticket(
    ioc: IocDep, token: Annotated[str | None, Depends(_bearer)] = None
) -> StreamTicket:
    """For `EventSource`/WebSocket URLs (`?ticket=`): valid for one stream, opened within
    a minute; the stream then lives as long as the session (re-checked while it runs)."""
    grant = _grant(_claims(ioc, token))
    await authorise(ioc, grant)
    return StreamTicket(
        ticket=ioc.tickets.issue(grant.username, grant.session_expires), expires_in=TICKET_TTL_S
    )


@router.get("/me", response_model=Me, summary="Who the token belongs to")
async def me(user: ViewerDep) -> Me:
    return Me(username=user.username, role=user.role)
