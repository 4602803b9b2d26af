"""Funnel events reach Kafka: portal -> MQTT -> real ``tourpulse gateway`` -> tp.portal.funnel.v1.

The portal serves a one-deployment config whose site id is the test's namespace, so the
gateway (confined to that site, as in ``tests/test_gateway.py``) sees only this test's
events on the shared broker.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import Settings
from schemas.codec import decode_event
from schemas.topics import KafkaTopic
from tests.support.gateway_cli import run_cli, site_gateway_args, stop_cli, wait_healthy
from tests.support.net import free_port
from tests.support.portal_stubs import (
    StubControllers,
    portal_app,
    portal_settings,
    serve,
)

pytestmark = pytest.mark.integration
MAC = "3c:22:fb:0a:0b:0c"
KINDS = [
    "portal.impression",
    "portal.terms_accepted",
    "portal.access_granted",
    "portal.promo_click",
]


def _write_configs(root: Path, site: str) -> Path:
    cfg = root / "device_configs"
    cfg.mkdir()
    (cfg / "sites.yaml").write_text(
        "sites:\n"
        f"- id: {site}\n  name_vi: Chợ Bến Thành\n  name_en: Ben Thanh Market\n  kind: urban\n"
        "  lat: 10.7725\n  lon: 106.698\n  capacity_persons: 3000\n  venue: market\n"
        "- id: notre-dame-cathedral\n  name_vi: Nhà thờ Đức Bà\n  name_en: Notre-Dame\n"
        "  kind: urban\n  lat: 10.7798\n  lon: 106.699\n  capacity_persons: 1500\n"
        "  venue: landmark\n",
        encoding="utf-8",
    )
    return cfg


@pytest.fixture
async def gateway(settings: Settings, namespace: str, tmp_path: Path) -> AsyncIterator[None]:
    port = free_port()
    log = tmp_path / "gateway.log"
    proc = run_cli(settings, log, *site_gateway_args(namespace, port))
    try:
        await wait_healthy(proc, port, log)
        yield None
    finally:
        assert await stop_cli(proc) == 0


async def test_funnel_events_flow_through_the_gateway_into_kafka(
    settings: Settings, namespace: str, kafka_admin: Any, tmp_path: Path, gateway: None
) -> None:
    topic = settings.kafka_topic(KafkaTopic.PORTAL_FUNNEL)
    await kafka_admin.create_topics([topic], 2)
    local = settings.model_copy(update={"device_configs": _write_configs(tmp_path, namespace)})
    stub = StubControllers(free_port())
    app = portal_app(local, portal_settings(stub.port))
    async with (
        serve(stub.app(), stub.port),
        serve(app, free_port()) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as client,
    ):
        r = await client.get(stub.meraki_landing(base, namespace, MAC, "http://example.com/"))
        csrf = r.text.split('name="csrf" value="')[1].split('"')[0]
        grant = await client.post(
            f"/portal/{namespace}/accept", data={"csrf": csrf, "terms": "yes"}
        )
        welcome = await client.get(grant.headers["location"], follow_redirects=True)
        promo = welcome.text.split('href="/portal/go/')[1].split('"')[0]
        assert (await client.get(f"/portal/go/{promo}")).status_code == 303

    records = await kafka_admin.consume_all(topic, len(KINDS), timeout=90)
    events = [decode_event(r.value) for r in records]
    assert sorted(e.type for e in events) == sorted(KINDS)
    assert all(r.key == namespace.encode() for r in records)  # keyed by site
    assert all(e.site == namespace and e.ingest_time is not None for e in events)
    assert len({e.data.client_id for e in events}) == 1  # one pseudonymous visitor
    click = next(e for e in events if e.type == "portal.promo_click")
    assert click.data.clicked.promo == promo
    raw = MAC.replace(":", "")
    assert all(raw not in json.dumps(e.model_dump(mode="json")).replace(":", "") for e in events)
