"""The Faust application of the stream worker: consumer-group settings and domain agents.

This is the ``--engine faust`` path. The default engine (stream/wifi/direct.py) feeds the
same processor from a plain aiokafka batch consumer, because Faust's per-event machinery
measured ~250 µs of CPU per event here (a no-op sink tops out near 3,900 events per
CPU-second); this app stays for stream logic that needs Faust tables, windows or timers.

Tuning that matters (measured on faust-streaming 0.15 / aiokafka 0.14):

* events arrive keyed by site, so agents consume the gateway's topic directly (no
  repartition topic) and one partition's sites are always handled by one worker;
* agents batch with ``stream.take`` and do one database transaction per batch, because
  per-event processing tops out near 1,000-1,400 events/s per worker;
* the group join waits about half the rebalance timeout, and a ``kill -9``'d member is only
  evicted after the session timeout, so both are options (short in tests, safer defaults);
* Faust's own web server is off: /metrics and /healthz come from infra.observability.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from infra.settings import Settings
from stream.faust_batch import batch_app
from stream.wifi.agent import register_occupancy
from stream.wifi.processor import OccupancyProcessor, ProcessorConfig

#: Consumer group / app id (namespaced): every worker process of a deployment joins it.
APP_NAME = "tp.worker.occupancy"


@dataclass(frozen=True)
class WorkerOptions:
    batch_size: int = 2000
    batch_window: float = 0.2
    close_interval: float = 10.0
    rebalance_timeout: float = 20.0
    group_session_timeout: float = 30.0
    heartbeat_interval: float = 3.0
    partitions: int = 4
    processor: ProcessorConfig | None = None


def create_app(settings: Settings, options: WorkerOptions) -> tuple[faust.App, OccupancyProcessor]:
    """Build the app (not started) and the occupancy processor its agent feeds."""
    app = batch_app(
        settings,
        APP_NAME,
        batch_size=options.batch_size,
        rebalance_timeout=options.rebalance_timeout,
        group_session_timeout=options.group_session_timeout,
        heartbeat_interval=options.heartbeat_interval,
        partitions=options.partitions,
    )
    processor = register_occupancy(app, settings, options)
    return app, processor
