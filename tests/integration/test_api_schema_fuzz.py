"""schemathesis over the whole OpenAPI schema of the full app (real PostgreSQL and Kafka):
no server errors, and no status code the schema does not document."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from api.app import create_app
from api.ioc.users import Role, UserStore
from api.portal.settings import PortalSettings
from core.settings import Settings
from infra.bench.api_schema import run_schema
from tests.support.api_support import uvicorn_server
from tests.support.net import until

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "schema-fuzz-admin-token-0123456789abcdef"
PASSWORD = "correct horse battery"


async def _operator_token(base: str) -> str:
    import httpx

    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.post("/api/v1/auth/token", data={"username": "olga", "password": PASSWORD})
        r.raise_for_status()
        return str(r.json()["access_token"])


async def test_whole_schema_has_no_server_errors_or_undocumented_statuses(
    settings: Settings, database_url: str, kafka_admin: Any
) -> None:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as pool:
        await UserStore(pool).create("olga", PASSWORD, Role.ADMIN)
    app = create_app(settings)
    app.state.portal_settings = PortalSettings(
        secret=SecretStr("schema-fuzz-portal-secret-0123456789"),
        admin_tokens={"ops": SecretStr(ADMIN_TOKEN)},
    )
    async with uvicorn_server(app) as base:
        await until(lambda: hasattr(app.state, "ioc"), "the IOC feature")
        token = await _operator_token(base)
        headers = {
            "/api/v1": {"Authorization": f"Bearer {token}"},
            "/api/v1/portal/admin": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
        }
        run = await asyncio.to_thread(run_schema, base, app.openapi(), headers, 25, 40.0)
    print(f"schemathesis: {run.operations} operations, {run.cases} cases, {run.statuses}")
    assert run.operations >= 30 and run.cases >= 300, run
    assert run.server_errors == [], run.server_errors[:5]
    assert run.undocumented == {}, "; ".join(
        f"{k} {sorted(v)}" for k, v in sorted(run.undocumented.items())
    )
