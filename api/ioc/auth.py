"""OAuth2 password flow with JWT access tokens, and the role checks routes depend on.

Tokens are HS256 JWTs (PyJWT) carrying the username; the role is read from the database
on every request rather than trusted from the token, and tokens issued before the user's
``tokens_valid_after`` (password change, role change, disable) are refused, so revoking
an operator takes effect at once instead of at token expiry.
"""

from __future__ import annotations

import time
from typing import Annotated

import jwt
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel

from api.errors import ApiError
from api.ioc.state import IocState, get_ioc
from api.ioc.users import Role, User

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


async def user_from_token(ioc: IocState, token: str | None) -> User:
    if not token:
        raise _unauthorized("log in first: no bearer token")
    try:
        claims = jwt.decode(
            token,
            ioc.secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["sub", "exp", "iat", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorized("the session expired; log in again") from None
    except jwt.PyJWTError:
        raise _unauthorized("invalid token") from None
    user = await ioc.users.get(str(claims["sub"]))
    if user is None or user.disabled:
        raise _unauthorized("this account no longer exists or is disabled")
    if float(claims["iat"]) < user.tokens_valid_after.timestamp():
        raise _unauthorized("the token was revoked (password or role changed); log in again")
    return user


async def current_user(ioc: IocDep, token: Annotated[str | None, Depends(_bearer)] = None) -> User:
    return await user_from_token(ioc, token)


async def stream_user(
    request: Request,
    ioc: IocDep,
    access_token: Annotated[
        str | None,
        Query(description="For EventSource/WebSocket clients, which cannot send headers."),
    ] = None,
) -> User:
    """Header or ``?access_token=`` (browsers' EventSource cannot set Authorization)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    token = value if scheme.lower() == "bearer" and value else access_token
    return await user_from_token(ioc, token)


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
    responses={401: {"description": "Wrong username or password."}},
)
async def login(
    ioc: IocDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
) -> Token:
    """Form fields `username` and `password` (as `application/x-www-form-urlencoded`, the
    OAuth2 password grant); returns a bearer token for `Authorization: Bearer ...`."""
    user = await ioc.users.authenticate(username.strip().lower(), password)
    if user is None:
        raise _unauthorized("wrong username or password")
    return issue_token(ioc, user)


@router.get("/me", response_model=Me, summary="Who the token belongs to")
async def me(user: ViewerDep) -> Me:
    return Me(username=user.username, role=user.role)
