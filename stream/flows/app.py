"""Faust app of ``tourpulse flows``: visitor flows and fused occupancy in one worker.

Agents:

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

import faust

from device_configs import DeviceConfigs
from infra.observability import Health
from infra.settings import Settings
from schemas.topics import KafkaTopic
from stream.faust_batch import batch_app
from stream.flows import metrics
from stream.flows.sink import FlowsConfig
from stream.flows.worker import FlowsWorker
from stream.fusion.model import FusionParams
from stream.fusion.service import FusionService
from stream.storage import retention

log = logging.getLogger(__name__)

APP_NAME = "tp.worker.flows"


@dataclass(frozen=True)
class FlowsOptions:
    flows: FlowsConfig = field(default_factory=FlowsConfig)
    fusion: FusionParams = field(default_factory=FusionParams)
    with_fusion: bool = True
    batch_size: int = 2000
    batch_window: float = 0.5
    recompute_interval: float = 5.0
    refresh_interval: float = 60.0
    retention_interval: float = 3600.0
    retention: retention.RetentionPolicy | None = field(default_factory=retention.RetentionPolicy)
    rebalance_timeout: float = 20.0
    group_session_timeout: float = 30.0
    heartbeat_interval: float = 3.0


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


def build_app(
    settings: Settings, configs: DeviceConfigs, options: FlowsOptions
) -> tuple[faust.App, FlowsService]:
    app = batch_app(
        settings,
        APP_NAME,
        batch_size=options.batch_size,
        rebalance_timeout=options.rebalance_timeout,
        group_session_timeout=options.group_session_timeout,
        heartbeat_interval=options.heartbeat_interval,
    )
    service = FlowsService(settings, configs, options)
    updates = _raw_topic(app, settings.kafka_topic(KafkaTopic.FLOWS_HOURLY))

    async def send_update(key: bytes | None, value: bytes) -> None:
        await updates.send(key=key, value=value)

    flows = service.flows = FlowsWorker(settings.database_url, options.flows, send_update)
    source = _raw_topic(app, settings.kafka_topic(KafkaTopic.WIFI_SESSION))

    @app.agent(source, name="flows")
    async def flows_agent(stream: Any) -> None:
        # take() acks a batch only when we come back for the next one: after the commit.
        async for values in stream.take(options.batch_size, within=options.batch_window):
            await flows.process(values)

    @app.timer(options.recompute_interval)
    async def recompute() -> None:
        await service.recompute_tick()

    @app.timer(options.retention_interval)
    async def retention_timer() -> None:
        await service.retention_tick()

    if service.fusion is not None:
        _register_fusion(app, settings, service.fusion, flows)
    return app, service


def _register_fusion(
    app: faust.App, settings: Settings, fusion: FusionService, flows: FlowsWorker
) -> None:
    fused = _raw_topic(app, settings.kafka_topic(KafkaTopic.OCCUPANCY_FUSED))
    inputs = {
        "fusion-wifi": (KafkaTopic.OCCUPANCY_LIVE, fusion.on_wifi),
        "fusion-camera": (KafkaTopic.CAMERA_METADATA, fusion.on_camera),
        "fusion-availability": (KafkaTopic.DEVICE_AVAILABILITY, fusion.on_availability),
    }
    for name, (topic, handler) in inputs.items():
        _feed_agent(app, name, _raw_topic(app, settings.kafka_topic(topic)), handler)

    @app.task
    async def load_calibration() -> None:
        n = await flows.with_db(lambda sink: fusion.load(sink.conn))
        log.info("loaded %d site calibrations", n)

    @app.timer(1.0)
    async def fusion_tick() -> None:
        for msg in fusion.tick():
            await fused.send(key=msg.site.encode(), value=msg.model_dump_json().encode())

    @app.timer(10.0)
    async def save_calibration() -> None:
        async def save(sink: Any) -> int:
            async with sink.conn.transaction():
                return await fusion.save(sink.conn)

        n = await flows.with_db(save)
        if n:
            log.info("saved %d site calibrations", n)


def _feed_agent(app: faust.App, name: str, topic: Any, handler: Any) -> None:
    @app.agent(topic, name=name)
    async def agent(stream: Any) -> None:
        async for value in stream:
            handler(value)


def _raw_topic(app: faust.App, name: str) -> Any:
    """A topic of raw bytes: the contract codec (schemas.codec) does the (de)serialising."""
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
