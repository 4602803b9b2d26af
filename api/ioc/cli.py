"""``tourpulse users``: manage IOC accounts. The first admin is created here, never by a
default password baked into the product.

The password is read from ``--password-stdin`` (first line), else ``TP_IOC_PASSWORD``,
else prompted twice on the terminal, so it never has to appear on a command line (where
``ps`` and shell history would keep it).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable

import psycopg
from psycopg_pool import AsyncConnectionPool

from api.ioc.users import Role, UserError, UserStore
from core.settings import get_settings

PASSWORD_ENV = "TP_IOC_PASSWORD"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "users",
        help="manage IOC console/API users (create the first admin here)",
        description="Create and manage IOC users (roles viewer < operator < admin). "
        "Uses DATABASE_URL / the local stack's database.",
    )
    sub = parser.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="create a user")
    create.add_argument("--username", required=True)
    create.add_argument("--role", choices=[r.value for r in Role], default=Role.VIEWER.value)
    _password_args(create)
    create.set_defaults(func=_create)
    passwd = sub.add_parser("set-password", help="set a new password (revokes old tokens)")
    passwd.add_argument("--username", required=True)
    _password_args(passwd)
    passwd.set_defaults(func=_set_password)
    role = sub.add_parser("set-role", help="change a user's role (revokes old tokens)")
    role.add_argument("--username", required=True)
    role.add_argument("--role", choices=[r.value for r in Role], required=True)
    role.set_defaults(func=_set_role)
    for name, disabled in (("disable", True), ("enable", False)):
        p = sub.add_parser(name, help=f"{name} a user (disabling revokes tokens at once)")
        p.add_argument("--username", required=True)
        p.set_defaults(func=_toggle(disabled))
    listing = sub.add_parser("list", help="list users")
    listing.set_defaults(func=_list)


def _password_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help=f"read the password from the first line of stdin (else ${PASSWORD_ENV}, "
        "else a prompt)",
    )


def read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        raise UserError(
            f"no password: use --password-stdin, set {PASSWORD_ENV}, or run in a terminal"
        )
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise UserError("the passwords do not match")
    return first


def _run(action: Callable[[UserStore], Awaitable[str]]) -> int:
    async def main() -> str:
        async with AsyncConnectionPool(
            get_settings().database_url, min_size=1, max_size=1, open=False
        ) as pool:
            return await action(UserStore(pool))

    try:
        print(asyncio.run(main()))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except psycopg.errors.UndefinedTable:
        print("error: no ioc_users table; run `tourpulse db migrate` first", file=sys.stderr)
        return 1
    except (psycopg.OperationalError, TimeoutError) as exc:
        print(f"error: database unreachable: {exc}", file=sys.stderr)
        return 1
    return 0


def _create(args: argparse.Namespace) -> int:
    try:
        password = read_password(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def action(users: UserStore) -> str:
        user = await users.create(args.username.strip().lower(), password, Role(args.role))
        return f"created {user.username} ({user.role.value})"

    return _run(action)


def _set_password(args: argparse.Namespace) -> int:
    try:
        password = read_password(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def action(users: UserStore) -> str:
        await users.set_password(args.username, password)
        return f"password of {args.username} changed; its old tokens no longer work"

    return _run(action)


def _set_role(args: argparse.Namespace) -> int:
    async def action(users: UserStore) -> str:
        await users.set_role(args.username, Role(args.role))
        return f"{args.username} is now {args.role}"

    return _run(action)


def _toggle(disabled: bool) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        async def action(users: UserStore) -> str:
            await users.set_disabled(args.username, disabled)
            return f"{args.username} {'disabled' if disabled else 'enabled'}"

        return _run(action)

    return run


def _list(args: argparse.Namespace) -> int:
    async def action(users: UserStore) -> str:
        rows = await users.list()
        if not rows:
            return "no users yet: create the first admin with `tourpulse users create --role admin`"
        return "\n".join(
            "\t".join([u.username, u.role.value, *(["disabled"] if u.disabled else [])])
            for u in rows
        )

    return _run(action)
