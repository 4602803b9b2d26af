"""One Faust configuration for every batch-consuming stream worker (occupancy, flows).

Why these values: events are keyed by site at the gateway, so agents read its topics
directly (no repartition); agents batch with ``stream.take`` (per-event processing tops
out near 1,000-1,400 events/s per worker here); Faust's web server is off because
/metrics and /healthz come from infra.observability; the rebalance and session timeouts
are options because the group join waits about half the former and a ``kill -9``'d member
is evicted only after the latter (short in tests, safer defaults in production).
"""

from __future__ import annotations

from typing import Any

import faust

from infra.settings import Settings


def batch_app(
    settings: Settings,
    name: str,
    *,
    batch_size: int,
    rebalance_timeout: float,
    group_session_timeout: float,
    heartbeat_interval: float,
    partitions: int | None = None,
) -> faust.App:
    """A Faust app tuned for batch agents (see the module docstring); ``name`` is namespaced
    and is the consumer group every worker process of that kind joins."""
    extra: dict[str, Any] = {"topic_partitions": partitions} if partitions else {}
    return faust.App(
        settings.kafka_topic(name),
        **settings.kafka_client_settings().faust(),
        store="memory://",
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=rebalance_timeout,
        broker_session_timeout=group_session_timeout,
        broker_heartbeat_interval=heartbeat_interval,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        stream_buffer_maxsize=max(4096, batch_size * 2),
        **extra,
    )
