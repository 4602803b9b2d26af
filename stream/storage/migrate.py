"""Apply the SQL migrations in ``stream/storage/migrations`` in order, each exactly once.

Every file runs in its own transaction together with its ``schema_migrations`` row, so a
failing migration leaves nothing half-applied. A session-level advisory lock serialises
concurrent runners (two workers starting at once, a worker and ``tourpulse db migrate``):
the second waits, then finds everything applied.
"""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg

from stream.storage.partitions import ensure_event_partitions_sync

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Arbitrary constant identifying "the TourPulse migrator" among advisory locks.
MIGRATION_LOCK_KEY = 0x7450_6D69_6772


def timescale_ready(conn: psycopg.Connection) -> bool:
    """TimescaleDB can be used: installed here, or available and preloaded by the server."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
        " OR (EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"
        " AND current_setting('shared_preload_libraries', true) LIKE '%%timescaledb%%')"
    ).fetchone()
    return bool(row and row[0])


def backend_of(conn: psycopg.Connection) -> str:
    """``timescaledb`` when this database uses the extension, else ``plain``."""
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return "timescaledb" if row else "plain"


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    """The migrations in apply order (file names start with a zero-padded number)."""
    return sorted(directory.glob("[0-9]*.sql"))


#: ``auto``: TimescaleDB when the server preloads it, else plain PostgreSQL; ``plain``:
#: plain PostgreSQL even on a TimescaleDB server (tests run both); ``timescaledb``: refuse
#: to migrate without it.
BACKENDS = ("auto", "plain", "timescaledb")


def apply(database_url: str, directory: Path = MIGRATIONS_DIR, backend: str = "auto") -> list[str]:
    """Apply pending migrations; return the names of those applied by this call."""
    if backend not in BACKENDS:
        raise ValueError(f"storage backend must be one of {BACKENDS}, not {backend!r}")
    applied: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT set_config('tourpulse.storage_backend', %s, false)", (backend,))
        if backend == "timescaledb" and not timescale_ready(conn):
            raise RuntimeError("TimescaleDB is not installed and preloaded on this server")
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
            for path in migration_files(directory):
                if path.name in done:
                    continue
                log.info("applying migration %s", path.name)
                with conn.transaction():
                    conn.execute(path.read_text())
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (path.name,))
                applied.append(path.name)
            ensure_event_partitions_sync(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied
