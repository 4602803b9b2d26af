"""``tourpulse db migrate``: bring a PostgreSQL database up to the current schema."""

from __future__ import annotations

import argparse
import sys

import psycopg

from infra.settings import get_settings
from stream.storage import migrate


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("db", help="database tools")
    dsub = p.add_subparsers(dest="db_cmd", required=True)
    m = dsub.add_parser(
        "migrate", help="apply pending SQL migrations (safe to run concurrently and repeatedly)"
    )
    m.add_argument(
        "--database-url", help="PostgreSQL URL (default: DATABASE_URL / stack / local default)"
    )
    m.set_defaults(func=_cmd_migrate)


def _cmd_migrate(args: argparse.Namespace) -> int:
    url = args.database_url or get_settings().database_url
    try:
        applied = migrate.apply(url)
    except psycopg.Error as exc:
        print(f"error: migration failed: {exc}", file=sys.stderr)
        return 1
    if applied:
        for name in applied:
            print(f"applied {name}")
    else:
        print("database is up to date")
    return 0
