"""End-to-end portal flows over HTTP against the stub controllers and real PostgreSQL/MQTT."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from api.portal.controllers.opennds import encrypt_query
from tests.support.net import free_port
from tests.support.portal_stubs import (
    StubControllers,
    portal_app,
    portal_settings,
    serve,
)

pytestmark = pytest.mark.integration
MAC = "AA:BB:CC:11:22:33"


@pytest.fixture
async def env(settings: Any) -> AsyncIterator[dict[str, Any]]:
    stub = StubControllers(free_port())
    port = free_port()
    app = portal_app(settings, portal_settings(stub.port))
    async with (
        serve(stub.app(), stub.port),
        serve(app, port) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as client,
    ):
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
    assert re.match(rf"{stub.base}/splash/[\w-]+/grant\?continue_url=", r.headers["location"])
    r = await client.get(r.headers["location"], follow_redirects=True)
    assert r.status_code == 200 and stub.meraki_grants[0].duration == "7200"
    replay = await client.post("/portal/ben-thanh-market/accept", data=form)
    assert replay.status_code == 409 and len(stub.meraki_grants) == 1


async def test_opennds_fas_level2(env: dict[str, Any]) -> None:
    stub, client = env["stub"], env["client"]
    landing = stub.opennds_landing(env["base"], "saigon-zoo", MAC, 2, "http://example.org/")
    r = await client.get(landing)
    assert r.status_code == 200, r.text
    form = {"csrf": _csrf(r.text), "terms": "yes", "marketing": "yes"}
    r = await client.post("/portal/saigon-zoo/accept", data=form)
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith(f"{stub.base}/opennds_auth/?tok=")
    r = await client.get(location, follow_redirects=True)
    assert r.status_code == 200 and stub.opennds_authed == [MAC]
    # the same tok again: openNDS refuses, and the portal refuses a second grant too
    again = await client.get(location)
    assert again.status_code == 403 and stub.opennds_refused == 1
    assert (await client.post("/portal/saigon-zoo/accept", data=form)).status_code == 409


async def test_opennds_level1_is_refused_when_a_faskey_is_set(env: dict[str, Any]) -> None:
    """Level 1 is plain base64: anyone could forge a visit with a victim's MAC."""
    stub, client = env["stub"], env["client"]
    landing = stub.opennds_landing(env["base"], "saigon-zoo", MAC, 1, "http://example.org/")
    r = await client.get(landing)
    assert r.status_code == 400 and "tp_portal" not in r.cookies
    assert stub.opennds_authed == []


async def test_opennds_forged_level2_query_is_refused(env: dict[str, Any]) -> None:
    text = "clientmac=aa:bb:cc:dd:ee:ff, hid=" + "ab" * 32 + ", gatewayaddress=127.0.0.1:2050"
    forged = encrypt_query(text, "0123456789abcdef", "not-the-shared-key")  # attacker's key
    r = await env["client"].get(
        "/portal/saigon-zoo", params={"fas": forged, "iv": "0123456789abcdef"}
    )
    assert r.status_code == 400 and "tp_portal" not in r.cookies


async def test_unifi_authorises_through_controller_api(env: dict[str, Any]) -> None:
    stub, client = env["stub"], env["client"]
    r = await client.get(stub.unifi_landing(env["base"], "default", MAC, "http://example.net/x"))
    assert r.status_code == 200 and "Ben Thanh" in r.text
    r = await client.post(
        "/portal/ben-thanh-market/accept", data={"csrf": _csrf(r.text), "terms": "yes"}
    )
    assert r.status_code == 303 and "/portal/ben-thanh-market/welcome" in r.headers["location"]
    assert stub.unifi_authorized == [
        {
            "site": "default",
            "cmd": "authorize-guest",
            "mac": MAC,
            "minutes": 120,
            "ap_mac": "f0:9f:c2:00:00:01",
        }
    ]
    welcome = await client.get(r.headers["location"])
    assert 'href="http://example.net/x"' in welcome.text and "/portal/go/" in welcome.text


async def test_unifi_controller_refusal_is_an_error_page_and_retryable(
    settings: Any,
) -> None:
    stub = StubControllers(free_port())
    app = portal_app(settings, portal_settings(stub.port, unifi_password="wrong"))
    async with (
        serve(stub.app(), stub.port),
        serve(app, free_port()) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as client,
    ):
        r = await client.get(stub.unifi_landing(base, "default", MAC, "http://example.net/"))
        form = {"csrf": _csrf(r.text), "terms": "yes"}
        r = await client.post("/portal/ben-thanh-market/accept", data=form)
        assert r.status_code == 502 and stub.unifi_authorized == []
        r = await client.post("/portal/ben-thanh-market/accept", data=form)
        assert r.status_code == 502  # released, so retrying reaches the controller again


async def test_rfc8908_captive_api_and_direct_grant(env: dict[str, Any]) -> None:
    client = env["client"]
    r = await client.get("/api/v1/portal/captive/independence-palace")
    assert r.headers["content-type"].startswith("application/captive+json")
    doc = r.json()
    assert doc["captive"] is True and doc["user-portal-url"].endswith("/portal/independence-palace")
    page = await client.get(doc["user-portal-url"])
    r = await client.post(
        "/portal/independence-palace/accept", data={"csrf": _csrf(page.text), "terms": "yes"}
    )
    assert r.status_code == 303
    doc = (await client.get("/api/v1/portal/captive/independence-palace")).json()
    assert doc["captive"] is False and 7000 < doc["seconds-remaining"] <= 7200


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("base_grant_url=https://evil.example/grant&client_mac=aa:bb:cc:dd:ee:ff", 400),
        ("base_grant_url=javascript:alert(1)&client_mac=aa:bb:cc:dd:ee:ff", 400),
        ("base_grant_url=http://user:pw@127.0.0.1/grant&client_mac=aa:bb:cc:dd:ee:ff", 400),
        ("base_grant_url=http://127.0.0.1/grant", 400),  # no client_mac
        ("base_grant_url=http://127.0.0.1/grant&client_mac=not-a-mac", 400),
        ("base_grant_url=http://127.0.0.1/grant&client_mac=" + "a" * 5000, 400),
        (
            "base_grant_url=http://127.0.0.1/grant&client_mac=aa:bb:cc:dd:ee:ff"
            "&user_continue_url=//evil.example",
            400,
        ),
        ("fas=" + "A" * 5000, 400),
        ("fas=bm90IGEgZmFzIHF1ZXJ5", 400),
    ],
)
async def test_bad_controller_input_gets_error_page(
    env: dict[str, Any], query: str, status: int
) -> None:
    r = await env["client"].get(f"/portal/ben-thanh-market?{query}")
    assert r.status_code == status and "<h1>" in r.text and "tp_portal" not in r.cookies


async def test_accept_without_terms_csrf_or_cookie_is_refused(env: dict[str, Any]) -> None:
    stub, client = env["stub"], env["client"]
    r = await client.get(stub.meraki_landing(env["base"], "ben-thanh-market", MAC, "http://a.b/"))
    csrf = _csrf(r.text)
    url = "/portal/ben-thanh-market/accept"
    assert (await client.post(url, data={"csrf": csrf})).status_code == 400  # terms unticked
    assert (await client.post(url, data={"csrf": "0" * 64, "terms": "yes"})).status_code == 403
    cross = await client.post(
        url, data={"csrf": csrf, "terms": "yes"}, headers={"Origin": "http://evil.example"}
    )
    assert cross.status_code == 403
    async with httpx.AsyncClient(base_url=env["base"]) as fresh:  # no cookie
        assert (await fresh.post(url, data={"csrf": csrf, "terms": "yes"})).status_code == 400
    assert (await client.post(url, data={"csrf": csrf, "terms": "y" * 100})).status_code == 422
    assert stub.meraki_grants == []


async def test_rate_limit_per_client(settings: Any) -> None:
    app = portal_app(settings, portal_settings(1, rate_per_minute=10))
    async with serve(app, free_port()) as base, httpx.AsyncClient(base_url=base) as client:
        codes = [(await client.get("/portal/saigon-zoo")).status_code for _ in range(12)]
    assert codes[:5] == [200] * 5 and 429 in codes


async def test_splash_is_small_self_contained_and_localised(env: dict[str, Any]) -> None:
    stub, client = env["stub"], env["client"]
    names = {
        "vi": "Tiếng Việt",
        "en": "English",
        "ko": "한국어",
        "zh-Hans": "简体中文",
        "ja": "日本語",
    }
    for lang in names:
        landing = stub.meraki_landing(env["base"], "ben-thanh-market", MAC, "http://a.example/")
        r = await client.get(landing + f"&lang={lang}")
        assert r.status_code == 200 and f'<html lang="{lang}">' in r.text
        assert len(r.content) < 30 * 1024  # the whole transfer before images: no CSS/JS files
        assert not re.search(r"<(script|link)\b", r.text)
        for tag, name in names.items():  # the switcher names each language in itself
            assert f'lang="{tag}" hreflang="{tag}"' in r.text and name in r.text
        assert 'type="checkbox" id="marketing" name="marketing" value="yes">' in r.text
