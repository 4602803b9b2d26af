"""The portal mounted in the real API app (``api.app.create_app``), sharing its pool."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from portal_stubs import free_port, serve

from api.app import create_app

pytestmark = pytest.mark.integration


async def test_portal_is_mounted_in_the_api(settings: Any) -> None:
    app = create_app(settings)
    async with serve(app, free_port()) as base, httpx.AsyncClient(base_url=base) as client:
        splash = await client.get("/portal/notre-dame-cathedral", headers={"Accept-Language": "vi"})
        assert splash.status_code == 200 and '<html lang="vi">' in splash.text
        assert app.state.portal.pool is app.state.pool  # one pool for the whole API
        funnel = await client.get("/api/v1/portal/funnel")
        assert funnel.status_code == 200 and funnel.json()["totals"]["visits"] >= 0
        missing = await client.get("/api/v1/portal/funnel", params={"site": "atlantis"})
        assert missing.status_code == 404 and "error" in missing.json()
