"""``tourpulse flows`` on the stream runtime: visitor flows and fused occupancy in one worker.

Handlers:

* ``flows`` takes Wi-Fi session batches (its own consumer group, independent of the
  occupancy worker) and merges them into PostgreSQL, one transaction per batch;
* a timer recomputes dirty hours every ``recompute_interval`` seconds (debounce), refreshes
  open hours now and then (minute rollups arrive from the occupancy worker at their own
  pace) and sends the changed hours to ``tp.flows.hourly.v1``;
* ``fusion-wifi`` / ``fusion-camera`` / ``fusion-availability`` feed the fusion state and a
  1 s timer sends changed :class:`~schemas.stream_out.FusedOccupancyV1` per site;
* an hourly timer applies the storage retention policy.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from core.observability import Health
from core.settings import Settings
from device_configs import DeviceConfigs
from schemas.topics import KafkaTopic
from stream.flows import metrics
from stream.flows.sink import FlowsConfig
from stream.flows.worker import FlowsWorker
from stream.fusion.model import FusionParams
from stream.fusion.service import FusionService
from stream.runtime import RuntimeOptions, StreamRuntime
from stream.storage import retention

log = logging.getLogger(__name__)

#: Consumer group (namespaced), independent of the occupancy worker's.
GROUP = "tp.worker.flows"


@dataclass(frozen=True)
class FlowsOptions:
    flows: FlowsConfig = field(default_factory=FlowsConfig)
    fusion: FusionParams = field(default_factory=FusionParams)
    with_fusion: bool = True
    recompute_interval: float = 5.0
    refresh_interval: float = 60.0
    retention_interval: float = 3600.0
    retention: retention.RetentionPolicy | None = field(default_factory=retention.RetentionPolicy)


class FlowsService:
    """What the app's agents and timers call, and what /healthz reports on."""

    def __init__(self, settings: Settings, configs: DeviceConfigs, options: FlowsOptions) -> None:
        self.settings = settings
        self.options = options
        self.flows: FlowsWorker | None = None
        self.fusion = FusionService(configs, options.fusion) if options.with_fusion else None
        self._ticks = 0

    def health(self) -> Health:
        flows = self.flows
        ok = flows is not None and flows.db_ok
        details: dict[str, Any] = {
            "database": "ok" if ok else "failing (retrying)",
            "last_batch_at": flows.last_batch_at if flows else None,
            "last_recompute_at": flows.last_recompute_at if flows else None,
        }
        if self.fusion is not None:
            details["fusion_sites"] = len(self.fusion.sites)
        return Health(ok, details)

    async def recompute_tick(self) -> None:
        assert self.flows is not None
        every = max(1, round(self.options.refresh_interval / self.options.recompute_interval))
        self._ticks += 1
        await self.flows.recompute(refresh_open=self._ticks % every == 1)

    async def retention_tick(self) -> None:
        policy = self.options.retention
        if policy is None:
            return
        removed = await asyncio.to_thread(retention.enforce, self.settings.database_url, policy)
        for table, n in removed.items():
            metrics.RETENTION_ROWS.labels(table).inc(n)


def build_runtime(
    settings: Settings, configs: DeviceConfigs, options: FlowsOptions, runtime: RuntimeOptions
) -> tuple[StreamRuntime, FlowsService]:
    """The runtime (not started) and the service /healthz reports on."""
    app = StreamRuntime(settings.kafka_client_settings(), runtime)
    service = FlowsService(settings, configs, options)
    send_update = app.sender(settings.kafka_topic(KafkaTopic.FLOWS_HOURLY))
    flows = service.flows = FlowsWorker(settings.database_url, options.flows, send_update)
    # Offsets are committed only after process() returned: after the database commit.
    app.consume(settings.kafka_topic(KafkaTopic.WIFI_SESSION), flows.process)
    app.every(options.recompute_interval, service.recompute_tick)
    app.every(options.retention_interval, service.retention_tick)
    if service.fusion is not None:
        _register_fusion(app, settings, service.fusion, flows)
    return app, service


def _register_fusion(
    app: StreamRuntime, settings: Settings, fusion: FusionService, flows: FlowsWorker
) -> None:
    send_fused = app.sender(settings.kafka_topic(KafkaTopic.OCCUPANCY_FUSED))
    inputs = {
        KafkaTopic.OCCUPANCY_LIVE: fusion.on_wifi,
        KafkaTopic.CAMERA_METADATA: fusion.on_camera,
        KafkaTopic.DEVICE_AVAILABILITY: fusion.on_availability,
    }
    for topic, handler in inputs.items():
        app.consume_each(settings.kafka_topic(topic), handler)

    async def load_calibration() -> None:
        n = await flows.with_db(lambda sink: fusion.load(sink.conn))
        log.info("loaded %d site calibrations", n)

    async def fusion_tick() -> None:
        for msg in fusion.tick():
            await send_fused(msg.site.encode(), msg.model_dump_json().encode())

    async def save_calibration() -> None:
        async def save(sink: Any) -> int:
            async with sink.conn.transaction():
                return await fusion.save(sink.conn)

        n = await flows.with_db(save)
        if n:
            log.info("saved %d site calibrations", n)

    app.on_start(load_calibration)
    app.every(1.0, fusion_tick)
    app.every(10.0, save_calibration)
