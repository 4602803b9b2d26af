"""Funnel, consent, admin and events: the numbers move, and they move exactly once."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image

from schemas.codec import decode_event
from schemas.topics import MqttStream, mqtt_subscription
from tests.support.net import free_port, until
from tests.support.portal_stubs import (
    ADMIN_TOKEN,
    StubControllers,
    portal_app,
    portal_settings,
    serve,
)

pytestmark = pytest.mark.integration
MAC = "3c:22:fb:01:02:03"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Listener:
    """Collects portal funnel events from the real Mosquitto."""

    def __init__(self, host: str, port: int) -> None:
        self.events: list[Any] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_connect = lambda c, *_: c.subscribe(mqtt_subscription(MqttStream.FUNNEL), 1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = lambda _c, _u, m: self.events.append(decode_event(m.payload))
        self.client.connect(host, port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
async def env(settings: Any) -> AsyncIterator[dict[str, Any]]:
    stub = StubControllers(free_port())
    listener = Listener(settings.mqtt_host, settings.mqtt_port)
    await asyncio.to_thread(listener.ready.wait, 30)
    app = portal_app(settings, portal_settings(stub.port))
    try:
        async with (
            serve(stub.app(), stub.port),
            serve(app, free_port()) as base,
            httpx.AsyncClient(base_url=base, timeout=30) as client,
        ):
            yield {
                "stub": stub,
                "base": base,
                "client": client,
                "listener": listener,
                "db": settings.database_url,
            }
    finally:
        listener.close()


def _csrf(html: str) -> str:
    marker = 'name="csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


async def test_funnel_moves_once_per_stage_and_joins_wifi(env: dict[str, Any]) -> None:
    stub, client = env["stub"], env["client"]
    site = "central-post-office"
    r = await client.get(stub.meraki_landing(env["base"], site, MAC, "http://example.com/"))
    await client.get(f"/portal/{site}?lang=ja")  # language switch: same visit, no new impression
    form = {"csrf": _csrf(r.text), "terms": "yes", "marketing": "yes", "lang": "ja"}
    grant = await client.post(f"/portal/{site}/accept", data=form)
    welcome = await client.get(grant.headers["location"], follow_redirects=True)
    promo = welcome.text.split('href="/portal/go/')[1].split('"')[0]
    for _ in range(2):
        click = await client.get(f"/portal/go/{promo}")
        assert click.status_code == 303 and click.headers["location"].startswith("https://")
    await client.post(f"/portal/{site}/accept", data=form)  # replay: nothing moves

    # the Wi-Fi edge saw the same phone (same key, same pseudonym) after the grant
    with psycopg.connect(env["db"], autocommit=True) as conn:
        cid = conn.execute("SELECT client_id FROM portal_visits").fetchone()[0]
        conn.execute(
            "INSERT INTO wifi_sessions (site, session_id, client_id, ap, started_at, last_seen,"
            " ends_at) VALUES (%s, 's1', %s, 'ap1', now(), now(), now() + interval '5 min')",
            (site, cid),
        )
    report = (await client.get("/api/v1/portal/funnel", params={"site": site}, headers=AUTH)).json()
    assert report["totals"] == {"visits": 1, "accepted": 1, "granted": 1, "session_seen": 1}
    row = next(p for p in report["promos"] if p["promo"] == promo)
    assert (row["impressions"], row["accepted"], row["granted"], row["clicked"]) == (1, 1, 1, 1)
    assert row["session_seen"] == 1 and row["rates"]["clicked"] == 1.0

    listener = env["listener"]

    def mine() -> list[Any]:  # the shared broker also carries other portals' events
        return [e for e in listener.events if e.data.client_id == cid]

    kinds = [
        "portal.impression",
        "portal.terms_accepted",
        "portal.access_granted",
        "portal.promo_click",
    ]
    await until(
        lambda: sorted({e.type for e in mine()}) == sorted(kinds), f"funnel stages {kinds}", 30
    )
    await asyncio.sleep(0.5)  # let any duplicate arrive before counting
    counts = {k: sum(e.type == k for e in mine()) for k in kinds}
    assert counts == {
        "portal.impression": 1,
        "portal.terms_accepted": 1,
        "portal.access_granted": 1,
        "portal.promo_click": 2,
    }
    assert all(
        MAC.replace(":", "") not in json.dumps(e.model_dump(mode="json")).replace(":", "")
        for e in mine()
    )


async def test_consent_records_and_withdrawal(env: dict[str, Any]) -> None:
    stub, client = env["stub"], env["client"]
    site = "saigon-zoo"
    r = await client.get(stub.meraki_landing(env["base"], site, MAC, "http://example.com/"))
    await client.post(
        f"/portal/{site}/accept", data={"csrf": _csrf(r.text), "terms": "yes", "marketing": "yes"}
    )
    page = await client.get(f"/portal/{site}/privacy?lang=en")
    assert "City offers and measurement" in page.text and "Withdraw marketing consent" in page.text
    r = await client.post(
        f"/portal/{site}/consent/withdraw", data={"csrf": _csrf(page.text), "purpose": "marketing"}
    )
    assert r.status_code == 303
    with psycopg.connect(env["db"]) as conn:
        rows = conn.execute(
            "SELECT purpose, notice_version, withdrawn_at IS NOT NULL FROM portal_consents"
            " ORDER BY purpose"
        ).fetchall()
    assert [(p, w) for p, _, w in rows] == [("marketing", True), ("network_access", False)]
    assert all(v for _, v, _ in rows)


async def test_terms_only_records_no_marketing_consent(env: dict[str, Any]) -> None:
    stub, client = env["stub"], env["client"]
    r = await client.get(stub.meraki_landing(env["base"], "saigon-zoo", MAC, "http://e.com/"))
    assert 'name="marketing" value="yes">' in r.text and "checked" not in r.text
    await client.post("/portal/saigon-zoo/accept", data={"csrf": _csrf(r.text), "terms": "yes"})
    with psycopg.connect(env["db"]) as conn:
        purposes = [p for (p,) in conn.execute("SELECT purpose FROM portal_consents")]
    assert purposes == ["network_access"]


async def test_admin_api_is_authenticated_audited_and_targets_promos(env: dict[str, Any]) -> None:
    client = env["client"]
    body = {
        "kind": "event",
        "variants": {
            "a": {"en": {"title": "Ao Dai Festival", "body": "Nguyen Hue, 19:00"}},
            "b": {"en": {"title": "Free Ao Dai show tonight", "body": "19:00"}},
        },
        "url": "https://example.com/aodai",
        "sites": ["ben-thanh-market"],
        "languages": ["en"],
        "priority": 50,
        "starts_at": datetime(2020, 1, 1, tzinfo=UTC).isoformat(),
    }
    url = "/api/v1/portal/admin/promos/ao-dai-festival"
    assert (await client.put(url, json=body)).status_code == 401
    assert (
        await client.put(url, json=body, headers={"Authorization": "Bearer nope"})
    ).status_code == 401
    bad = {**body, "url": "javascript:alert(1)"}
    assert (await client.put(url, json=bad, headers=AUTH)).status_code == 422
    assert (await client.put(url, json=body, headers=AUTH)).status_code == 200

    png = io.BytesIO()
    Image.new("RGB", (1600, 900), (200, 30, 30)).save(png, "PNG")
    r = await client.put(url + "/image", content=png.getvalue(), headers=AUTH)
    assert r.status_code == 200
    image_id = r.json()["image"]
    img = await client.get(f"/portal/img/{image_id}-240.webp")
    assert img.status_code == 200 and "immutable" in img.headers["cache-control"]
    assert Image.open(io.BytesIO(img.content)).size == (240, 135)
    assert (
        await client.put(url + "/image", content=b"not an image", headers=AUTH)
    ).status_code == 422

    en = await client.get("/portal/ben-thanh-market?lang=en")
    vi = await client.get("/portal/ben-thanh-market?lang=vi")
    other = await client.get("/portal/saigon-zoo?lang=en")
    assert "Ao Dai" in en.text and image_id in en.text
    assert "Ao Dai" not in vi.text and "Ao Dai" not in other.text

    audit = (await client.get("/api/v1/portal/admin/audit", headers=AUTH)).json()
    assert [a["action"] for a in audit[:2]] == ["image", "upsert"] and audit[0]["actor"] == "ops"
    assert (await client.delete(url, headers=AUTH)).status_code == 200
    assert "Ao Dai" not in (await client.get("/portal/ben-thanh-market?lang=en")).text


async def test_funnel_api_rejects_bad_parameters(env: dict[str, Any]) -> None:
    client = env["client"]
    assert (await client.get("/api/v1/portal/funnel")).status_code == 401
    assert (
        await client.get("/api/v1/portal/funnel", params={"site": "nowhere"}, headers=AUTH)
    ).status_code == 404
    r = await client.get(
        "/api/v1/portal/funnel",
        params={"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"},
        headers=AUTH,
    )
    assert r.status_code == 422
    unbounded = await client.get(
        "/api/v1/portal/funnel",
        params={"since": "2000-01-01T00:00:00Z", "until": "2030-01-01T00:00:00Z"},
        headers=AUTH,
    )
    assert unbounded.status_code == 422 and "92 days" in unbounded.text
