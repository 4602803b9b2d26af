"""``make demo``'s portal path: a phone joins the simulated Meraki network, the funnel moves.

What the demo runs, minus the rest of the pipeline: ``tourpulse simulate controller`` as a
child process and the real API app (``api.app.create_app``) configured only through the
environment variables the demo sets. A phone-sized Chromium opens ``/connect/<site>``,
lands on the splash page in Vietnamese (its Accept-Language), accepts the terms, is let
online by the simulator's grant URL, and ``GET /api/v1/portal/funnel`` shows the move.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from tests.browser.test_portal_browser import PHONE
from tests.support.browser_support import requires_chromium
from tests.support.net import free_port
from tests.support.portal_stubs import serve

pytestmark = [
    pytest.mark.integration,
    requires_chromium,
]
SITE = "ben-thanh-market"
_OFF_BOX = re.compile(r"^https?://(?!127\.0\.0\.1[:/])")


def _start_controller(sim_port: int, api_port: int, log: Path) -> subprocess.Popen[bytes]:
    """The demo's child: ``tourpulse simulate controller --port .. --portal-url ..``."""
    cmd = [
        sys.executable,
        "-m",
        "infra.cli",
        "simulate",
        "controller",
        "--port",
        str(sim_port),
        "--portal-url",
        f"http://127.0.0.1:{api_port}",
    ]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def _text(log: Path) -> str:
    return log.read_text(errors="replace")


async def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            assert proc.poll() is None, _text(log)
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{url} never answered: {_text(log)}"
            await asyncio.sleep(0.2)


ADMIN = "demo-admin-token-0123456789abcdef"


@pytest.fixture
async def demo(
    settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[dict[str, str]]:
    api_port, sim_port = free_port(), free_port()
    # exactly what infra/demo.py gives the API child
    monkeypatch.setenv("TP_PORTAL_GRANT_HOSTS", '["127.0.0.1"]')
    monkeypatch.setenv("TP_PORTAL_SECRET", os.urandom(16).hex())
    monkeypatch.setenv("TP_PORTAL_ADMIN_TOKENS", json.dumps({"demo": ADMIN}))
    log = tmp_path / "controller.log"
    proc = _start_controller(sim_port, api_port, log)
    try:
        sim = f"http://127.0.0.1:{sim_port}"
        await _wait_healthy(f"{sim}/healthz", proc, log)
        async with serve(create_app(settings), api_port) as api:
            yield {"api": api, "sim": sim}
    finally:
        proc.terminate()
        # uvicorn shuts down gracefully, then re-raises SIGTERM (its documented behaviour)
        assert await asyncio.to_thread(proc.wait, 30) in (0, -signal.SIGTERM), _text(log)
    assert "Traceback" not in _text(log)


async def test_phone_joins_accepts_is_granted_and_the_funnel_moves(
    browser: Any,
    demo: dict[str, str],
) -> None:
    auth = {"Authorization": f"Bearer {ADMIN}"}  # the funnel is behind the admin token
    async with httpx.AsyncClient(base_url=demo["api"], timeout=30, headers=auth) as http:
        before = (await http.get("/api/v1/portal/funnel", params={"site": SITE})).json()
        context = await browser.new_context(locale="vi-VN", **PHONE)
        page = await context.new_page()
        try:
            await page.goto(f"{demo['sim']}/connect/{SITE}")
            assert page.url.startswith(f"{demo['api']}/portal/{SITE}?base_grant_url=")
            assert await page.get_attribute("html", "lang") == "vi"
            await page.check("#terms")
            await page.click("button[type=submit]")
            await page.wait_for_url(f"**/portal/{SITE}/welcome**")
            assert await page.get_attribute("html", "lang") == "vi"
            links = await page.eval_on_selector_all(
                "a[href^='/portal/go/']", "els => els.map(e => e.getAttribute('href'))"
            )
            shown = [href.rsplit("/", 1)[1] for href in links]
            # the promo's own site is off-box: answer it here, nothing leaves 127.0.0.1
            await page.route(_OFF_BOX, lambda route: route.fulfill(body="promo site"))
            await page.click(f"a[href='{links[0]}']")
            await page.wait_for_url(_OFF_BOX)
        finally:
            await context.close()
        sim = (await http.get(f"{demo['sim']}/healthz")).json()
        after = (await http.get("/api/v1/portal/funnel", params={"site": SITE})).json()
    assert sim["grants"] == 1  # the simulated controller opened the network
    assert before["totals"]["visits"] == 0
    assert after["totals"] == {"visits": 1, "accepted": 1, "granted": 1, "session_seen": 0}
    rows = {p["promo"]: p for p in after["promos"]}
    assert shown and set(shown) <= set(rows), (shown, rows)
    for promo in shown:
        row = rows[promo]
        moved = (row["impressions"], row["accepted"], row["granted"], row["clicked"])
        assert moved == (1, 1, 1, int(promo == shown[0])), (promo, row)
