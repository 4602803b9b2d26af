"""``tourpulse bench security``: abuse resistance of the API and of every network input.

* ``schemathesis_*``: the whole OpenAPI schema fuzzed against the full app (uvicorn,
  a fresh migrated database, the stack's Kafka), with operator and admin credentials.
* ``fuzz_*``: the in-process fuzzers of :mod:`infra.bench.fuzz_inputs`, 10,000 inputs per
  kind (``--events`` overrides), crashes and inputs neither accepted nor counted as
  rejected; RSS growth per kind.
* ``login_attempts_per_s_allowed_per_ip``: one address hammers ``/api/v1/auth/token``
  with wrong passwords for ``LOGIN_WINDOW_S``; attempts that reach the password check
  (not refused 429) per second after the initial burst.
* ``preflight_checks``: how many production checks ``tourpulse preflight`` runs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import uvicorn
from psycopg import sql
from pydantic import SecretStr

from infra.bench.api_schema import run_schema
from infra.bench.context import BenchContext, BenchError
from infra.bench.fuzz_inputs import TARGETS, run_kind
from infra.preflight import CHECKS
from stream.storage import migrate

FUZZ_PER_KIND = 10_000
LOGIN_WINDOW_S = 20.0
ADMIN_TOKEN = "bench-security-admin-token-0123456789abcdef"
PASSWORD = "bench security password"


def run(ctx: BenchContext) -> dict[str, Any]:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per login attempt
    per_kind = ctx.events or (500 if ctx.quick else FUZZ_PER_KIND)
    fuzz: dict[str, Any] = {}
    for kind in TARGETS:
        started = time.monotonic()
        r = run_kind(kind, per_kind)
        fuzz[kind] = {
            "inputs": r.inputs,
            "accepted": r.accepted,
            "rejected": r.rejected,
            "crashes": r.crash_count,
            "uncounted": r.uncounted_count,
            "rss_growth_kib": r.rss_growth_kib,
            "inputs_per_s": round(r.inputs / max(1e-9, time.monotonic() - started)),
            "first_crashes": r.crashes[:3],
        }
        print(f"fuzz {kind}: {r.inputs} inputs, {r.crash_count} crashes", flush=True)
    with _database(ctx) as database_url:
        api = _measure_api(ctx, database_url)
    return {
        **api,
        "fuzz_inputs": min(f["inputs"] for f in fuzz.values()),
        "fuzz_inputs_total": sum(f["inputs"] for f in fuzz.values()),
        "fuzz_crashes": sum(f["crashes"] for f in fuzz.values()),
        "fuzz_uncounted": sum(f["uncounted"] for f in fuzz.values()),
        "fuzz": fuzz,
        "preflight_checks": len(CHECKS),
    }


@contextmanager
def _database(ctx: BenchContext) -> Iterator[str]:
    admin_url = ctx.settings.database_url
    name = f"tp_bench_security_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = urlunsplit(urlsplit(admin_url)._replace(path="/" + name))
        migrate.apply(url)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _measure_api(ctx: BenchContext, database_url: str) -> dict[str, Any]:
    from api.app import create_app
    from api.ioc.users import Role, UserStore
    from api.portal.settings import PortalSettings

    settings = ctx.settings.model_copy(
        update={
            "database_url_env": database_url,
            "topic_namespace": f"bsec{uuid.uuid4().hex[:6]}",
        }
    )
    app = create_app(settings)
    app.state.portal_settings = PortalSettings(
        secret=SecretStr("bench-security-portal-secret-0123456789"),
        admin_tokens={"ops": SecretStr(ADMIN_TOKEN)},
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise BenchError("the API did not start")
            time.sleep(0.05)
        base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"

        async def _user() -> None:
            from psycopg_pool import AsyncConnectionPool

            async with AsyncConnectionPool(database_url, min_size=1, max_size=1) as pool:
                await UserStore(pool).create("bench", PASSWORD, Role.ADMIN)

        asyncio.run(_user())
        with httpx.Client(base_url=base, timeout=30) as client:
            token = client.post(
                "/api/v1/auth/token", data={"username": "bench", "password": PASSWORD}
            ).json()["access_token"]
            rate = _login_rate(client, LOGIN_WINDOW_S / (4 if ctx.quick else 1))
        headers = {
            "/api/v1": {"Authorization": f"Bearer {token}"},
            "/api/v1/portal/admin": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
        }
        started = time.monotonic()
        schema = run_schema(
            base, app.openapi(), headers, 10 if ctx.quick else 100, 60 if ctx.quick else 300
        )
        return {
            "schemathesis_operations": schema.operations,
            "schemathesis_cases": schema.cases,
            "schemathesis_server_errors": len(schema.server_errors),
            "schemathesis_undocumented_statuses": sum(len(v) for v in schema.undocumented.values()),
            "schemathesis_undocumented": {k: sorted(v) for k, v in schema.undocumented.items()},
            "schemathesis_statuses": {str(k): v for k, v in sorted(schema.statuses.items())},
            "schemathesis_seconds": round(time.monotonic() - started, 1),
            "schemathesis_first_errors": schema.server_errors[:5],
            **rate,
        }
    finally:
        server.should_exit = True
        thread.join(30)


def _login_rate(client: httpx.Client, window_s: float) -> dict[str, Any]:
    """Wrong-password attempts from one address as fast as one client can send them."""
    allowed: list[float] = []
    refused = 0
    started = time.monotonic()
    i = 0
    while (now := time.monotonic()) - started < window_s:
        i += 1
        r = client.post("/api/v1/auth/token", data={"username": f"guess{i}", "password": "x"})
        if r.status_code == 429:
            refused += 1
        else:
            allowed.append(now - started)
    sustained = [t for t in allowed if t >= window_s / 2]  # after the burst has drained
    return {
        "login_attempts_sent": i,
        "login_attempts_refused_429": refused,
        "login_attempts_allowed": len(allowed),
        "login_attempts_per_s_allowed_per_ip": round(len(sustained) / (window_s / 2), 3),
        "login_attempts_per_s_sent": round(i / window_s, 1),
    }
