"""End-to-end portal flows over HTTP against the stub controllers and real PostgreSQL/MQTT."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from portal_stubs import ADMIN_TOKEN, StubControllers, free_port, portal_app, portal_settings, serve

pytestmark = pytest.mark.integration
MAC = "AA:BB:CC:11:22:33"


@pytest.fixture
async def env(settings: Any) -> AsyncIterator[dict[str, Any]]:
    stub = StubControllers(free_port())
    port = free_port()
    app = portal_app(settings, portal_settings(stub.port))
    async with serve(stub.app(), stub.port), serve(app, port) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield {"stub": stub, "base": base, "client": client, "app": app}


def _csrf(html: str) -> str:
    marker = 'name="csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


async def test_meraki_flow_grants_once(env: dict[str, Any]) -> None:
    stub, client = env["stub"], env["client"]
    landing = stub.meraki_landing(env["base"], "ben-thanh-market", MAC, "http://example.com/news")
    r = await client.get(landing, headers={"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.5"})
    assert r.status_code == 200 and '<html lang="ko">' in r.text
    assert MAC.lower() not in r.text.lower()
    form = {"csrf": _csrf(r.text), "terms": "yes", "lang": "ko"}
    r = await client.post("/portal/ben-thanh-market/accept", data=form)
    assert r.status_code == 303
    assert r.headers["location"].startswith(f"{stub.base}/splash/grant?continue_url=")
    r = await client.get(r.headers["location"], follow_redirects=True)
    assert r.status_code == 200 and stub.meraki_grants[0]["duration"] == "7200"
    replay = await client.post("/portal/ben-thanh-market/accept", data=form)
    assert replay.status_code == 409 and len(stub.meraki_grants) == 1
