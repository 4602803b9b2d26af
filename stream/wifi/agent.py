"""Faust wiring of the occupancy processor: one batching agent and three timers."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import faust

from infra.settings import Settings
from schemas.topics import KafkaTopic
from stream.wifi.pipeline import BatchPipeline
from stream.wifi.processor import OccupancyProcessor, ProcessorConfig

if TYPE_CHECKING:
    from stream.app import WorkerOptions

log = logging.getLogger(__name__)

#: How often the partitions of the coming days are (re)checked.
PARTITION_CHECK_SECONDS = 3600.0


def register_occupancy(
    app: faust.App, settings: Settings, options: WorkerOptions
) -> OccupancyProcessor:
    source_name = settings.kafka_topic(KafkaTopic.WIFI_SESSION)
    source = _raw_topic(app, source_name)
    live = _raw_topic(app, settings.kafka_topic(KafkaTopic.OCCUPANCY_LIVE))
    dead = _raw_topic(app, settings.kafka_topic(KafkaTopic.DEAD_LETTER))

    async def send_live(key: bytes | None, value: bytes) -> None:
        await live.send(key=key, value=value)

    async def send_dead(key: bytes | None, value: bytes) -> None:
        await dead.send(key=key, value=value)

    config = options.processor or ProcessorConfig(settings.database_url, source_name)
    processor = OccupancyProcessor(config, send_live, send_dead)

    @app.agent(source, name="wifi-occupancy")
    async def occupancy(stream: Any) -> None:
        # noack_take yields Faust events (not values), never acking them: the pipeline
        # acks each one after its batch is committed.
        async with BatchPipeline(processor.process, stream.ack) as pipeline:
            async for events in stream.noack_take(options.batch_size, within=options.batch_window):
                await pipeline.submit(events)

    @app.timer(config.live_interval / 2)  # type: ignore[untyped-decorator]
    async def flush_live() -> None:
        await processor.flush_live()

    @app.timer(options.close_interval)  # type: ignore[untyped-decorator]
    async def close_quiet_minutes() -> None:
        n = await processor.close_lagging_sites()
        if n:
            log.debug("closed %d minutes of quiet sites", n)

    @app.task  # type: ignore[untyped-decorator]
    async def partitions_on_start() -> None:
        log.info("created %d event partitions", await processor.ensure_partitions())

    @app.timer(PARTITION_CHECK_SECONDS)  # type: ignore[untyped-decorator]
    async def partitions_daily() -> None:
        await processor.ensure_partitions()

    return processor


def _raw_topic(app: faust.App, name: str) -> Any:
    """A topic of raw bytes: the contract codec (schemas.codec) does the (de)serialising."""
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
