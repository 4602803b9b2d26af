"""``tourpulse db migrate`` (bring the schema up to date) and ``tourpulse db retention``."""

from __future__ import annotations

import argparse
import sys

import psycopg

from core.settings import get_settings
from stream.storage import migrate
from stream.storage.retention import RetentionPolicy, enforce


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("db", help="database tools")
    dsub = p.add_subparsers(dest="db_cmd", required=True)
    m = dsub.add_parser(
        "migrate", help="apply pending SQL migrations (safe to run concurrently and repeatedly)"
    )
    m.add_argument(
        "--database-url", help="PostgreSQL URL (default: DATABASE_URL / stack / local default)"
    )
    m.add_argument(
        "--backend",
        choices=migrate.BACKENDS,
        default="auto",
        help="auto: TimescaleDB when the server preloads it, else plain PostgreSQL; "
        "timescaledb: fail without it (default: %(default)s)",
    )
    m.set_defaults(func=_cmd_migrate)
    r = dsub.add_parser(
        "retention",
        help="drop data older than each table's keep period (raw 30 d, minute 90 d, hourly 2 y)",
        description="Drops whole daily partitions of raw events and deletes old rows of "
        "sessions, presence, minute and hourly rollups in batches. The flows worker also "
        "runs this hourly.",
    )
    r.add_argument("--database-url", help="PostgreSQL URL (default: as for migrate)")
    defaults = RetentionPolicy()
    r.add_argument(
        "--raw-days",
        type=int,
        default=defaults.raw_days,
        help="raw events, sessions, presence (default %(default)s)",
    )
    r.add_argument(
        "--minute-days",
        type=int,
        default=defaults.minute_days,
        help="occupancy_minute (default %(default)s)",
    )
    r.add_argument(
        "--hourly-days",
        type=int,
        default=defaults.hourly_days,
        help="hourly rollups and flows (default %(default)s)",
    )
    r.add_argument("--batch", type=int, default=5000, help="rows per delete transaction")
    r.add_argument("--dry-run", action="store_true", help="count what would go, remove nothing")
    r.set_defaults(func=_cmd_retention)


def _cmd_migrate(args: argparse.Namespace) -> int:
    url = args.database_url or get_settings().database_url
    try:
        applied = migrate.apply(url, backend=args.backend)
        with psycopg.connect(url) as conn:
            backend = migrate.backend_of(conn)
    except (psycopg.Error, RuntimeError) as exc:
        print(f"error: migration failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"storage backend: {backend}"
        + (
            ""
            if backend == "timescaledb"
            else " (TimescaleDB not preloaded: plain PostgreSQL, see README 'Storage')"
        )
    )
    if applied:
        for name in applied:
            print(f"applied {name}")
    else:
        print("database is up to date")
    return 0


def _cmd_retention(args: argparse.Namespace) -> int:
    if min(args.raw_days, args.minute_days, args.hourly_days) < 1 or args.batch < 1:
        print("error: keep periods and --batch must be >= 1", file=sys.stderr)
        return 2
    url = args.database_url or get_settings().database_url
    policy = RetentionPolicy(args.raw_days, args.minute_days, args.hourly_days)
    try:
        enforce(
            url,
            policy,
            batch=args.batch,
            dry_run=args.dry_run,
            say=lambda line: print(line, flush=True),
        )
    except psycopg.Error as exc:
        print(f"error: retention failed: {exc}", file=sys.stderr)
        return 1
    return 0
