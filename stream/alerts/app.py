"""The alert engine (``tourpulse alerts``) on the stream runtime.

Consumes fused occupancy, device heartbeats and availability, and camera metadata and
events; the engine decides; alert changes go to ``tp.alerts.changes.v1`` (keyed by site)
for the API's live feeds. Volumes here are small (about one message per second per site
or device), so handlers pass each batch's events to the engine one by one, in order; a new
consumer group starts at the latest offsets (the engine reacts to the present).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from core.observability import Health
from core.settings import Settings
from device_configs import DeviceConfigs
from schemas.camera import CameraLoudNoiseV1, CameraMetadataV1, CameraOnvifEventV1
from schemas.codec import ContractError, decode_event
from schemas.device import AvailabilityV1, DeviceHeartbeatV1
from schemas.stream_out import AlertChangedV1, FusedOccupancyV1
from schemas.topics import KafkaTopic
from stream.alerts.baseline import BaselineSource
from stream.alerts.engine import AlertEngine
from stream.alerts.notify import Notifier
from stream.alerts.store import AlertStore
from stream.runtime import RuntimeOptions, StreamRuntime

log = logging.getLogger(__name__)

REJECTED = Counter(
    "tp_alert_inputs_rejected_total", "Input messages the engine could not use", ["topic"]
)


class AlertService:
    """Holds the engine's clients; opened when the runtime starts, closed when it stops."""

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


#: Consumer group (namespaced) of the alert engine.
GROUP = "tourpulse-alerts"


def build_runtime(
    settings: Settings, configs: DeviceConfigs, options: RuntimeOptions
) -> tuple[StreamRuntime, AlertService]:
    """The runtime (not started) and the service /healthz reports on."""
    app = StreamRuntime(settings.kafka_client_settings(), options)
    service = AlertService(settings, configs)
    send_change = app.sender(settings.kafka_topic(KafkaTopic.ALERT_CHANGES))

    async def publish(change: AlertChangedV1) -> None:
        await send_change(change.alert.site.encode(), change.model_dump_json().encode())

    async def start() -> None:
        await service.start(publish)

    def engine() -> AlertEngine:
        assert service.engine is not None, "handlers run only after on_start"
        return service.engine

    async def occupancy(raw: bytes) -> None:
        try:
            update = FusedOccupancyV1.model_validate_json(raw)
        except ValidationError as exc:
            REJECTED.labels("occupancy").inc()
            log.warning("bad fused occupancy message: %s", exc.errors()[:1])
            return
        await engine().on_occupancy(update)

    async def heartbeat(raw: bytes) -> None:
        if isinstance(event := _decode(raw, "heartbeat"), DeviceHeartbeatV1):
            await engine().on_heartbeat(event)

    async def availability(raw: bytes) -> None:
        if isinstance(event := _decode(raw, "availability"), AvailabilityV1):
            await engine().on_availability(event)

    async def camera_metadata(raw: bytes) -> None:
        if isinstance(event := _decode(raw, "camera_metadata"), CameraMetadataV1):
            await engine().on_camera_metadata(event)

    async def camera_event(raw: bytes) -> None:
        if isinstance(
            event := _decode(raw, "camera_event"), CameraOnvifEventV1 | CameraLoudNoiseV1
        ):
            await engine().on_camera_event(event)

    handlers = {
        KafkaTopic.OCCUPANCY_FUSED: occupancy,
        KafkaTopic.DEVICE_HEARTBEAT: heartbeat,
        KafkaTopic.DEVICE_AVAILABILITY: availability,
        KafkaTopic.CAMERA_METADATA: camera_metadata,
        KafkaTopic.CAMERA_EVENT: camera_event,
    }
    for topic, handler in handlers.items():
        app.consume_each(settings.kafka_topic(topic), handler)

    async def timeouts() -> None:
        await engine().tick()
        service.last_tick = time.monotonic()

    async def escalation() -> None:
        await engine().escalate()

    app.on_start(start)
    app.every(1.0, timeouts)
    app.every(30.0, escalation)
    app.on_stop(service.stop)
    return app, service


def _decode(raw: bytes, topic: str) -> Any:
    """Messages were validated by the gateway; anything odd here is counted, not fatal."""
    try:
        return decode_event(raw)
    except ContractError as exc:
        REJECTED.labels(topic).inc()
        log.warning("bad %s message: %s", topic, exc)
        return None
