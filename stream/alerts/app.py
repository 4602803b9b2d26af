"""Faust app of the alert engine (``tourpulse alerts``).

Consumes fused occupancy, device heartbeats and availability, and camera metadata and
events; the engine decides; alert changes go to ``tp.alerts.changes.v1`` (keyed by site)
for the API's live feeds. Volumes here are small (about one message per second per site
or device), so agents handle events one by one for the lowest latency rather than in
batches.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import faust
from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from device_configs import DeviceConfigs
from infra.observability import Health
from infra.settings import Settings
from schemas.camera import CameraLoudNoiseV1, CameraMetadataV1, CameraOnvifEventV1
from schemas.codec import ContractError, decode_event
from schemas.device import AvailabilityV1, DeviceHeartbeatV1
from schemas.stream_out import AlertChangedV1, FusedOccupancyV1
from schemas.topics import KafkaTopic
from stream.alerts.baseline import BaselineSource
from stream.alerts.engine import AlertEngine
from stream.alerts.notify import Notifier
from stream.alerts.store import AlertStore

log = logging.getLogger(__name__)

REJECTED = Counter(
    "tourpulse_alert_inputs_rejected_total", "Input messages the engine could not use", ["topic"]
)


class AlertService:
    """Holds the engine's clients; opened in the Faust app's startup, closed at shutdown."""

    def __init__(self, settings: Settings, configs: DeviceConfigs) -> None:
        self.settings = settings
        self.configs = configs
        self.pool = AsyncConnectionPool(settings.database_url, min_size=1, max_size=4, open=False)
        self.notifier = Notifier(configs.alerting.notifications)
        self.engine: AlertEngine | None = None
        self.last_tick: float | None = None  # monotonic time of the last timeout sweep

    def health(self) -> Health:
        """Healthy once the engine runs and its 1 s timeout sweep keeps ticking."""
        age = time.monotonic() - self.last_tick if self.last_tick else None
        ok = self.engine is not None and age is not None and age < 10
        return Health(
            ok,
            {
                "engine": "running" if self.engine else "starting",
                "last_tick_age_s": round(age, 1) if age is not None else None,
            },
        )

    async def start(self, publish: Any) -> AlertEngine:
        await self.pool.open(wait=True, timeout=30)
        await self.notifier.start()
        store = AlertStore(
            self.pool, incident_window=timedelta(seconds=self.configs.alerting.incident_window_s)
        )
        self.engine = AlertEngine(
            self.configs, store, publish, self.notifier, BaselineSource(self.pool)
        )
        return self.engine

    async def stop(self) -> None:
        await self.notifier.stop()
        await self.pool.close()


def build_app(
    settings: Settings, configs: DeviceConfigs, web_port: int = 6067
) -> tuple[faust.App, AlertService]:
    app = faust.App(
        settings.kafka_topic("tourpulse-alerts"),
        **settings.kafka_client_settings().faust(),
        web_port=web_port,
        web_host="127.0.0.1",
        stream_wait_empty=False,
        consumer_auto_offset_reset="latest",
        broker_commit_every=100,
        broker_commit_interval=1.0,
        topic_partitions=4,
        topic_disable_leader=True,
    )
    service = AlertService(settings, configs)

    def topic(name: KafkaTopic) -> Any:
        return app.topic(
            settings.kafka_topic(name),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )

    changes = topic(KafkaTopic.ALERT_CHANGES)

    async def publish(change: AlertChangedV1) -> None:
        await changes.send(
            key=change.alert["site"].encode(), value=change.model_dump_json().encode()
        )

    async def engine() -> AlertEngine:
        return service.engine or await service.start(publish)

    @app.agent(topic(KafkaTopic.OCCUPANCY_FUSED))
    async def occupancy(stream: faust.StreamT[bytes]) -> None:
        async for raw in stream:
            try:
                update = FusedOccupancyV1.model_validate_json(raw)
            except ValidationError as exc:
                REJECTED.labels("occupancy").inc()
                log.warning("bad fused occupancy message: %s", exc.errors()[:1])
                continue
            await (await engine()).on_occupancy(update)

    @app.agent(topic(KafkaTopic.DEVICE_HEARTBEAT))
    async def heartbeats(stream: faust.StreamT[bytes]) -> None:
        async for raw in stream:
            event = _decode(raw, "heartbeat")
            if isinstance(event, DeviceHeartbeatV1):
                await (await engine()).on_heartbeat(event)

    @app.agent(topic(KafkaTopic.DEVICE_AVAILABILITY))
    async def availability(stream: faust.StreamT[bytes]) -> None:
        async for raw in stream:
            event = _decode(raw, "availability")
            if isinstance(event, AvailabilityV1):
                await (await engine()).on_availability(event)

    @app.agent(topic(KafkaTopic.CAMERA_METADATA))
    async def camera_metadata(stream: faust.StreamT[bytes]) -> None:
        async for raw in stream:
            event = _decode(raw, "camera_metadata")
            if isinstance(event, CameraMetadataV1):
                await (await engine()).on_camera_metadata(event)

    @app.agent(topic(KafkaTopic.CAMERA_EVENT))
    async def camera_events(stream: faust.StreamT[bytes]) -> None:
        async for raw in stream:
            event = _decode(raw, "camera_event")
            if isinstance(event, CameraOnvifEventV1 | CameraLoudNoiseV1):
                await (await engine()).on_camera_event(event)

    @app.timer(interval=1.0)
    async def timeouts() -> None:
        await (await engine()).tick()
        service.last_tick = time.monotonic()

    @app.timer(interval=30.0)
    async def escalation() -> None:
        await (await engine()).escalate()

    @app.task
    async def startup() -> None:
        await engine()

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # faust signal typing
    async def close_clients(app: faust.App, *args: Any, signal: Any, **kwargs: Any) -> None:
        await service.stop()

    return app, service


def _decode(raw: bytes, topic: str) -> Any:
    """Messages were validated by the gateway; anything odd here is counted, not fatal."""
    try:
        return decode_event(raw)
    except ContractError as exc:
        REJECTED.labels(topic).inc()
        log.warning("bad %s message: %s", topic, exc)
        return None
