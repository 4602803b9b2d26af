"""The portal in Debian's Chromium, phone-sized: every integration end to end, and axe-core.

Each walk runs with JavaScript disabled (the splash must work without it): land from the
stub controller, switch language, accept the terms, get sent through the controller's
grant step, land on the welcome page and continue to the original URL. Accessibility is
checked separately (axe needs JavaScript) on every page in every language.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser_support import requires_chromium
from tests.support.net import free_port
from tests.support.portal_stubs import (
    StubControllers,
    portal_app,
    portal_settings,
    serve,
)

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
}
MAC = "f2:11:22:33:44:55"

pytestmark = [
    pytest.mark.integration,
    requires_chromium,
]


@pytest.fixture
async def env(settings: Any) -> AsyncIterator[dict[str, Any]]:
    stub = StubControllers(free_port())
    app = portal_app(settings, portal_settings(stub.port))
    async with serve(stub.app(), stub.port), serve(app, free_port()) as base:
        yield {"stub": stub, "base": base}


def _landing(env: dict[str, Any], integration: str) -> tuple[str, str]:
    stub, base = env["stub"], env["base"]
    origin = f"{stub.base}/original"
    if integration == "meraki":
        return stub.meraki_landing(base, "ben-thanh-market", MAC, origin), "ben-thanh-market"
    if integration.startswith("opennds"):
        level = int(integration[-1])
        return stub.opennds_landing(base, "saigon-zoo", MAC, level, origin), "saigon-zoo"
    if integration == "unifi":
        return stub.unifi_landing(base, "default", MAC, origin), "ben-thanh-market"
    return f"{base}/portal/independence-palace?continue={origin}", "independence-palace"


@pytest.mark.parametrize("integration", ["meraki", "opennds2", "unifi", "rfc8908"])
async def test_walk_without_javascript(browser: Any, env: dict[str, Any], integration: str) -> None:
    context = await browser.new_context(java_script_enabled=False, locale="vi-VN", **PHONE)
    page = await context.new_page()
    try:
        url, site = _landing(env, integration)
        await page.goto(url)
        assert await page.get_attribute("html", "lang") == "vi"
        await page.get_by_role("link", name="English").click()
        assert await page.get_attribute("html", "lang") == "en"
        await page.get_by_role("heading", level=1).wait_for()
        terms = page.get_by_label("I accept the terms of use")
        marketing = page.get_by_label("Optional: show me city offers")
        assert not await terms.is_checked() and not await marketing.is_checked()
        await terms.check()
        await page.get_by_role("button", name="Connect").click()
        await page.wait_for_url(f"**/portal/{site}/welcome**")
        assert await page.get_by_role("heading", name="You are online").is_visible()
        await page.get_by_role("link", name="Continue to your page").click()
        await page.wait_for_url(f"{env['stub'].base}/original")
    finally:
        await context.close()
    stub = env["stub"]
    granted = {
        "meraki": len(stub.meraki_grants),
        "opennds1": len(stub.opennds_authed),
        "opennds2": len(stub.opennds_authed),
        "unifi": len(stub.unifi_authorized),
        "rfc8908": 1,
    }[integration]
    assert granted == 1


async def test_keyboard_only_accept(browser: Any, env: dict[str, Any]) -> None:
    context = await browser.new_context(locale="en-GB", **PHONE)
    page = await context.new_page()
    try:
        url, site = _landing(env, "meraki")
        await page.goto(url)
        await page.focus("#terms")
        await page.keyboard.press("Space")
        for _ in range(10):
            await page.keyboard.press("Tab")
            if await page.evaluate("document.activeElement.type") == "submit":
                break
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"**/portal/{site}/welcome**")
    finally:
        await context.close()
    assert len(env["stub"].meraki_grants) == 1


@pytest.mark.parametrize("lang", ["vi", "en", "ko", "zh-Hans", "ja"])
async def test_axe_no_serious_violations(browser: Any, env: dict[str, Any], lang: str) -> None:
    if not AXE.exists():
        pytest.fail(f"{AXE} missing: run `npm ci` at the repository root")
    context = await browser.new_context(bypass_csp=True, **PHONE)
    page = await context.new_page()
    try:
        url, site = _landing(env, "meraki")
        pages = [
            f"{url}&lang={lang}",
            f"{env['base']}/portal/{site}/privacy?lang={lang}",
            f"{env['base']}/portal/{site}?lang={lang}&base_grant_url=javascript:x",  # error page
        ]
        for target in pages:
            await page.goto(target)
            await _assert_axe_clean(page)
        await page.goto(pages[0])
        await page.check("#terms")
        await page.click("button[type=submit]")
        await page.wait_for_url(f"**/portal/{site}/welcome**")
        await _assert_axe_clean(page)
    finally:
        await context.close()


async def _assert_axe_clean(page: Any) -> None:
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        "axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
    )
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} @ {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{page.url}: {bad}"
