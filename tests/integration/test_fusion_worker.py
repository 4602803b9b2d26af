"""Fused occupancy through real Kafka: Wi-Fi updates and camera metadata in, a calibrated
FusedOccupancyV1 out; stop the camera and the estimate turns degraded. The calibration
is saved to PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from core.settings import Settings
from schemas.camera import CameraMetadataV1, VideoMetadata
from schemas.codec import encode_event
from schemas.stream_out import OccupancyUpdateV1
from schemas.topics import KafkaTopic
from tests.support.flows_helpers import flows_topics, start_flows
from tests.support.worker_support import query, stop_worker, wait_for

pytestmark = pytest.mark.integration
SITE = "ben-thanh-market"  # two cameras in device_configs/hcmc, coverage 0.25 each
CAMERAS = ["ben-thanh-market-cam1", "ben-thanh-market-cam2"]


async def _feed(producer: AIOKafkaProducer, settings: Settings, cameras: asyncio.Event) -> None:
    """100 Wi-Fi clients; 75 people in each camera's zones (150 in half the site: 3.0)."""
    wifi = settings.kafka_topic(KafkaTopic.OCCUPANCY_LIVE)
    meta = settings.kafka_topic(KafkaTopic.CAMERA_METADATA)
    while True:
        now = datetime.now(UTC)
        msg = OccupancyUpdateV1(site=SITE, connected=100, as_of=now, emitted_at=now)
        await producer.send_and_wait(wifi, msg.model_dump_json().encode(), key=SITE.encode())
        if cameras.is_set():
            for cam in CAMERAS:
                data = VideoMetadata(zones={"entrance": 75}, people=80)
                ev = CameraMetadataV1(
                    site=SITE, device=cam, source="test.camera", event_time=now, data=data
                )
                await producer.send_and_wait(meta, encode_event(ev), key=SITE.encode())
        await asyncio.sleep(0.5)


async def test_calibrated_then_degraded(
    settings: Settings, kafka_admin: object, tmp_path: Path
) -> None:
    await kafka_admin.create_topics(flows_topics(settings))  # type: ignore[attr-defined]
    log = tmp_path / "flows.log"
    proc = start_flows(settings, log, "--no-retention", "--camera-stale", "3")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    consumer = AIOKafkaConsumer(
        settings.kafka_topic(KafkaTopic.OCCUPANCY_FUSED),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await producer.start()
    await consumer.start()
    cameras = asyncio.Event()
    cameras.set()
    feeder = asyncio.create_task(_feed(producer, settings, cameras))

    async def next_matching(check: object, timeout: float) -> dict:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for rec in records:
                    msg = json.loads(rec.value)
                    if msg["site"] == SITE and check(msg):  # type: ignore[operator]
                        return msg
        raise AssertionError(f"no matching fused update in {timeout}s:\n{log.read_text()[-3000:]}")

    try:
        calibrated = await next_matching(
            lambda m: m["people_per_client"] and abs(m["people_per_client"] - 3.0) < 0.01, 120
        )
        assert not calibrated["degraded"] and calibrated["stale_sensors"] == []
        assert calibrated["wifi_clients"] == 100 and calibrated["camera_people"] == 150
        assert calibrated["low"] < calibrated["people"] == 300.0 < calibrated["high"]
        assert calibrated["capacity"] > 0
        cameras.clear()  # the cameras go quiet
        degraded = await next_matching(lambda m: m["degraded"], 60)
        assert degraded["stale_sensors"] == [f"camera:{c}" for c in CAMERAS]
        assert degraded["people"] == 300.0  # Wi-Fi with the learnt ratio carries on
        await wait_for(
            lambda: (
                query(
                    settings.database_url,
                    "SELECT count(*) FROM fusion_calibration "
                    f"WHERE site = '{SITE}' AND samples >= 10",
                )
                == [(1,)]
            ),
            60,
            "calibration saved",
            proc,
            log,
        )
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        await consumer.stop()
        await producer.stop()
        stop_worker(proc)
