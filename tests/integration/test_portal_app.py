"""The portal mounted in the real API app (``api.app.create_app``), sharing its pool."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from api.app import create_app
from api.config import ApiTuning
from api.portal.state import build_runtime, seed_until_done
from tests.support.net import free_port
from tests.support.portal_stubs import portal_settings, serve

pytestmark = pytest.mark.integration


async def test_portal_is_mounted_in_the_api(settings: Any) -> None:
    app = create_app(settings)
    async with serve(app, free_port()) as base, httpx.AsyncClient(base_url=base) as client:
        splash = await client.get("/portal/notre-dame-cathedral", headers={"Accept-Language": "vi"})
        assert splash.status_code == 200 and '<html lang="vi">' in splash.text
        assert app.state.portal.pool is app.state.pool  # one pool for the whole API
        funnel = await client.get("/api/v1/portal/funnel")  # business data: not public
        assert funnel.status_code == 401 and "error" in funnel.json()


async def test_portal_starts_and_serves_splash_while_database_down(settings: Any) -> None:
    """The seed runs in the background: no PoolTimeout at start-up, the page still renders."""
    down = settings.model_copy(
        update={"database_url_env": "postgresql://tourpulse:tourpulse@127.0.0.1:1/tourpulse"}
    )
    app = create_app(down, ApiTuning(db_timeout_s=1.0))
    async with serve(app, free_port()) as base, httpx.AsyncClient(base_url=base) as client:
        splash = await client.get("/portal/saigon-zoo?lang=en")
        assert splash.status_code == 200 and '<html lang="en">' in splash.text
        assert 'name="terms"' in splash.text  # the visitor can still accept and go online


async def test_promos_are_seeded_once_the_database_is_reachable(settings: Any) -> None:
    runtime = build_runtime(settings, portal_settings(free_port()), _Unreachable(), publish=False)
    first_try = asyncio.Event()
    task = asyncio.create_task(seed_until_done(runtime, first_try))
    try:
        await asyncio.wait_for(first_try.wait(), 30)
        assert not task.done()  # failed once, retrying
        async with AsyncConnectionPool(settings.database_url, open=False) as pool:
            runtime.store.pool = pool
            await asyncio.wait_for(task, 60)
            assert [p.id for p in await runtime.store.promos()]
    finally:
        task.cancel()


class _Unreachable:
    """A pool whose every checkout fails, as psycopg_pool's does during an outage."""

    def connection(self) -> Any:
        raise PoolTimeout("couldn't get a connection after 1.00 sec")
