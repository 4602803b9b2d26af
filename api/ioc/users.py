"""IOC users in PostgreSQL (``ioc_users``) with Argon2id password hashes.

Hashing is deliberately slow (tens of ms of CPU, 64 MiB), so it runs in a worker thread
behind a :class:`~api.security.hashing.HashGate`: a burst of logins must neither freeze the
live feeds sharing the event loop nor allocate 64 MiB per concurrent attempt. Unknown
users are checked against a dummy hash so response time does not reveal which usernames
exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from api.security.hashing import HashGate

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")
#: Shorter passwords are refused at creation (NIST SP 800-63B minimum for chosen secrets).
MIN_PASSWORD_LEN = 8
MAX_PASSWORD_LEN = 1024  # Argon2 hashes anything, but a 1 GB "password" is a DoS

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a real password: equalises timing for unknown users")


class Role(StrEnum):
    """Ordered by power: each role can do everything the ones before it can."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class UserError(ValueError):
    """Invalid username or password, or a duplicate user (message is user-facing)."""


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    disabled: bool
    tokens_valid_after: datetime


def check_new_credentials(username: str, password: str) -> None:
    if not USERNAME.match(username):
        raise UserError(
            "username must be 2-64 characters of a-z, 0-9, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    if not MIN_PASSWORD_LEN <= len(password) <= MAX_PASSWORD_LEN:
        raise UserError(
            f"password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters long"
        )


def _verify(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class UserStore:
    def __init__(self, pool: AsyncConnectionPool, gate: HashGate | None = None) -> None:
        self._pool = pool
        self.gate = gate or HashGate()

    async def create(self, username: str, password: str, role: Role) -> User:
        check_new_credentials(username, password)
        hashed = await self.gate.run(_hasher.hash, password)
        try:
            async with self._pool.connection() as conn:
                row = await _one(
                    conn,
                    "INSERT INTO ioc_users (username, password_hash, role) VALUES (%s, %s, %s)"
                    " RETURNING username, role, disabled, tokens_valid_after",
                    (username, hashed, role.value),
                )
        except UniqueViolation:
            raise UserError(f"user {username!r} already exists") from None
        assert row is not None
        return _user(row)

    async def set_password(self, username: str, password: str) -> None:
        """New password; tokens issued before now stop working."""
        check_new_credentials(username, password)
        hashed = await self.gate.run(_hasher.hash, password)
        await self._update(
            username,
            "UPDATE ioc_users SET password_hash = %s, tokens_valid_after = now()"
            " WHERE username = %s RETURNING username",
            (hashed, username),
        )

    async def set_role(self, username: str, role: Role) -> None:
        await self._update(
            username,
            "UPDATE ioc_users SET role = %s, tokens_valid_after = now()"
            " WHERE username = %s RETURNING username",
            (role.value, username),
        )

    async def set_disabled(self, username: str, disabled: bool) -> None:
        await self._update(
            username,
            "UPDATE ioc_users SET disabled = %s, tokens_valid_after = now()"
            " WHERE username = %s RETURNING username",
            (disabled, username),
        )

    async def authenticate(self, username: str, password: str) -> User | None:
        """The user if the password is right and the account enabled, else ``None``."""
        async with self._pool.connection() as conn:
            row = await _one(
                conn,
                "SELECT username, role, disabled, tokens_valid_after, password_hash"
                " FROM ioc_users WHERE username = %s",
                (username,),
            )
        stored = str(row["password_hash"]) if row else _DUMMY_HASH
        ok = await self.gate.run(_verify, stored, password[:MAX_PASSWORD_LEN])
        if not ok or row is None or row["disabled"]:
            return None
        if _hasher.check_needs_rehash(stored):
            hashed = await self.gate.run(_hasher.hash, password)
            async with self._pool.connection() as conn:
                await conn.execute(
                    "UPDATE ioc_users SET password_hash = %s WHERE username = %s",
                    (hashed, username),
                )
        return _user(row)

    async def get(self, username: str) -> User | None:
        async with self._pool.connection() as conn:
            row = await _one(
                conn,
                "SELECT username, role, disabled, tokens_valid_after FROM ioc_users"
                " WHERE username = %s",
                (username,),
            )
        return _user(row) if row else None

    async def list(self) -> list[User]:
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT username, role, disabled, tokens_valid_after FROM ioc_users"
                " ORDER BY username"
            )
            return [_user(r) for r in await cur.fetchall()]

    async def _update(self, username: str, sql: str, params: tuple[object, ...]) -> None:
        async with self._pool.connection() as conn:
            if await _one(conn, sql, params) is None:
                raise UserError(f"no user {username!r}")


def _user(row: dict[str, object]) -> User:
    valid_after = row["tokens_valid_after"]
    assert isinstance(valid_after, datetime)
    return User(str(row["username"]), Role(str(row["role"])), bool(row["disabled"]), valid_after)


async def _one(
    conn: AsyncConnection, sql: str, params: tuple[object, ...]
) -> dict[str, object] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchone()
