"""The occupancy worker (``tourpulse worker``) on the stream runtime.

Each batch of Wi-Fi session events goes to :class:`OccupancyProcessor`, whose database
transaction commits before the runtime commits the batch's offsets (at-least-once delivery
+ idempotent sink = exact results). Timers send due live updates, close the minutes of
quiet sites and keep the coming days' event partitions created.
"""

from __future__ import annotations

import logging

from core.kafka_client import KafkaClientSettings
from stream.runtime import RuntimeOptions, StreamRuntime
from stream.wifi.processor import OccupancyProcessor, ProcessorConfig

log = logging.getLogger(__name__)

#: Consumer group (namespaced): every occupancy worker process of a deployment joins it.
GROUP = "tp.worker.occupancy"
#: How often the partitions of the coming days are (re)checked.
PARTITION_CHECK_SECONDS = 3600.0


def build_runtime(
    kafka: KafkaClientSettings,
    options: RuntimeOptions,
    config: ProcessorConfig,
    *,
    live_topic: str,
    dead_topic: str,
    close_interval: float = 10.0,
) -> tuple[StreamRuntime, OccupancyProcessor]:
    """The runtime (not started) and the processor it feeds, for /healthz."""
    runtime = StreamRuntime(kafka, options)
    processor = OccupancyProcessor(config, runtime.sender(live_topic), runtime.sender(dead_topic))
    runtime.consume(config.source_topic, processor.process)
    runtime.every(config.live_interval / 2, processor.flush_live)
    runtime.every(close_interval, processor.close_lagging_sites)
    runtime.every(PARTITION_CHECK_SECONDS, processor.ensure_partitions, first=0.0)
    runtime.on_stop(processor.close)
    return runtime, processor
