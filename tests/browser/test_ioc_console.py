"""The /ioc console in Debian's Chromium: log in, watch live numbers change, acknowledge
an alert raised by the real alert engine from a device-offline event, see the audit entry;
layout checked at 1920x1080 and at laptop size.

The engine runs in-process (``AlertEngine`` with the real ``AlertStore`` and a real Kafka
producer on the alert-changes topic) instead of as the ``tourpulse alerts`` worker:
same rules, store and topic, without a worker start-up in every browser test. The full
MQTT -> gateway -> worker path is what ``tourpulse bench alerts`` measures.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from psycopg_pool import AsyncConnectionPool

from api.app import create_app
from api.ioc.users import Role, UserStore
from core.settings import Settings
from device_configs.loader import load_device_configs
from schemas.device import AvailabilityData, AvailabilityV1
from schemas.stream_out import AlertChangedV1, FusedOccupancyV1, OccupancyUpdateV1
from schemas.topics import KafkaTopic
from stream.alerts.engine import AlertEngine
from stream.alerts.store import AlertStore
from tests.support.api_support import uvicorn_server
from tests.support.browser_support import requires_chromium
from tests.support.net import until

SITE = "ben-thanh-market"
DEVICE = "ben-thanh-market-ap01"
PASSWORD = "operator password 1"

pytestmark = [
    pytest.mark.integration,
    requires_chromium,
]


async def _feed_occupancy(producer: AIOKafkaProducer, settings: Settings) -> None:
    """A live site: fused and Wi-Fi occupancy every 0.5 s, people rising by 7 each time."""
    fused = settings.kafka_topic(KafkaTopic.OCCUPANCY_FUSED)
    wifi = settings.kafka_topic(KafkaTopic.OCCUPANCY_LIVE)
    people = 100.0
    while True:
        now = datetime.now(UTC)
        update = FusedOccupancyV1(
            site=SITE,
            people=people,
            low=people * 0.9,
            high=people * 1.1,
            capacity=4000,
            wifi_clients=int(people / 2.5),
            people_per_client=2.5,
            source="wifi_prior",
            confidence="low",
            flags=["wifi_silent"],
            as_of=now,
            emitted_at=now,
        )
        await producer.send_and_wait(fused, update.model_dump_json().encode(), key=SITE.encode())
        occupancy = OccupancyUpdateV1(
            site=SITE, connected=int(people / 2.5), as_of=now, emitted_at=now
        )
        await producer.send_and_wait(wifi, occupancy.model_dump_json().encode(), key=SITE.encode())
        people += 7
        await asyncio.sleep(0.5)


async def _number_when(locator: Any, condition: Any, within: float = 60.0) -> int:
    """Poll a cell until it shows a number satisfying ``condition``; return it."""
    seen = ""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        seen = (await locator.text_content() or "").strip()
        if seen.isdigit() and condition(int(seen)):
            return int(seen)
        await asyncio.sleep(0.2)
    raise AssertionError(f"cell never satisfied the condition; last text {seen!r}")


async def test_operator_sees_live_numbers_and_acknowledges_an_engine_alert(
    settings: Settings, database_url: str, kafka_admin: Any, browser: Any
) -> None:
    topics = [
        settings.kafka_topic(t)
        for t in (
            KafkaTopic.OCCUPANCY_LIVE,
            KafkaTopic.OCCUPANCY_FUSED,
            KafkaTopic.FLOWS_HOURLY,
            KafkaTopic.ALERT_CHANGES,
        )
    ]
    await kafka_admin.create_topics(topics, partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    pool = AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False)
    await pool.open()
    await UserStore(pool).create("olga", PASSWORD, Role.OPERATOR)
    async with pool.connection() as conn:  # a rising day, read back through the hourly series
        await conn.execute(
            "INSERT INTO occupancy_minute (site, minute, connected, new_sessions, ended_sessions)"
            " SELECT %s, date_trunc('hour', now()) - g * interval '1 hour', 100 - g, 0, 0"
            " FROM generate_series(0, 23) g",
            (SITE,),
        )

    async def publish(change: AlertChangedV1) -> None:
        await producer.send_and_wait(
            settings.kafka_topic(KafkaTopic.ALERT_CHANGES),
            change.model_dump_json().encode(),
            key=change.alert.site.encode(),
        )

    engine = AlertEngine(load_device_configs(settings.device_configs), AlertStore(pool), publish)
    app = create_app(settings)
    feeder = asyncio.create_task(_feed_occupancy(producer, settings))
    try:
        async with uvicorn_server(app) as base:
            await until(lambda: app.state.ioc.feed.hub.ready, "the IOC feed", within=90)
            page = await browser.new_page(viewport={"width": 1920, "height": 1080})
            await page.goto(f"{base}/ioc")
            await page.fill("input[name=username]", "olga")
            await page.fill("input[name=password]", "wrong password")
            await page.click("#login-form button")
            await page.wait_for_selector("#login-error:text('wrong username or password')")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("#login-form button")
            await page.wait_for_selector("#console:not([hidden])")
            await page.wait_for_selector("#feed-status.live", timeout=60_000)
            assert (await page.text_content("#whoami")) == "olga (operator)"

            people = page.locator(f"tr[data-site='{SITE}'] td.people")
            # Polled from Python: the console's CSP rightly forbids eval (wait_for_function).
            first = await _number_when(people, lambda n: n > 0)
            await _number_when(people, lambda n: n > first)
            points = await page.get_attribute(
                f"tr[data-site='{SITE}'] svg.spark polyline", "points"
            )
            assert points and len(points.split()) >= 2  # the sparkline is drawn
            band = page.locator(f"tr[data-site='{SITE}'] td.band")
            assert await band.get_attribute("data-confidence") == "low"
            text = await band.text_content() or ""
            low, high = (int(n) for n in text.split("Wi-Fi")[0].split("–"))
            assert low < high  # the band around the number
            assert "Wi-Fi × site ratio" in text and "low confidence" in text
            assert "Wi-Fi silent" in text  # the sensor-health flag, spelled out
            day = f"tr[data-site='{SITE}'] svg.spark polyline.day"
            await page.wait_for_selector(f"{day}[points]")
            trend = [
                tuple(map(float, p.split(",")))
                for p in (await page.get_attribute(day, "points") or "").split()
            ]
            heights = [y for _, y in trend if y < 24]  # hours with data, oldest first
            assert len(heights) >= 23 and heights == sorted(heights, reverse=True)

            # The real engine raises device.offline for a Last Will of an access point.
            await engine.on_availability(
                AvailabilityV1(
                    site=SITE,
                    device=DEVICE,
                    source="test",
                    event_time=datetime.now(UTC),
                    data=AvailabilityData(state="offline", reason="last-will"),
                )
            )
            item = page.locator("#alert-queue li", has_text="device.offline")
            await item.wait_for(timeout=30_000)
            assert await item.get_attribute("data-state") == "ACTIVE_UNACK"
            assert (await page.text_content("#alert-count")) == "1"
            await item.get_by_role("button", name="Ack").click()
            await page.wait_for_selector("#alert-queue li[data-state='ACTIVE_ACK']", timeout=30_000)
            await (
                page.locator("#alert-queue li", has_text="device.offline")
                .get_by_role("button", name="History")
                .click()
            )
            audit = page.locator("#audit li[data-action='ack']")
            await audit.wait_for(timeout=30_000)
            assert "olga ack ACTIVE_UNACK → ACTIVE_ACK" in (await audit.text_content() or "")
            assert await page.locator("#audit li[data-action='raise']").count() == 1

            # Control-room wall and laptop: nothing overflows sideways, the map is usable.
            for width, height in ((1920, 1080), (1366, 768)):
                await page.set_viewport_size({"width": width, "height": height})
                overflow = await page.evaluate(
                    "document.documentElement.scrollWidth - window.innerWidth"
                )
                assert overflow <= 0, f"horizontal overflow of {overflow}px at {width}x{height}"
                box = await page.locator("#map").bounding_box()
                assert box and box["width"] > 400 and box["height"] >= 300
                markers = await page.locator("#map path.leaflet-interactive").count()
                assert markers >= 20  # every configured site, with no tile server at all
            await page.close()
            async with httpx.AsyncClient(base_url=base) as client:
                metrics = (await client.get("/metrics")).text
            assert 'tp_api_ioc_alert_actions_total{action="ack",outcome="ok"} 1.0' in metrics
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        await producer.stop()
        await pool.close()
