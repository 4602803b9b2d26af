"""Liveness and metrics: what operators and Prometheus poll."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg import Error as PsycopgError
from psycopg_pool import PoolTimeout

from api.deps import ConfigsDep, LiveFeedDep, MetricsDep, PoolDep
from api.models import ComponentHealth, HealthReport

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])

#: Seconds each dependency gets to answer a health probe (a probe must not hang).
PROBE_TIMEOUT_S = 2.0


@router.get(
    "/healthz",
    response_model=HealthReport,
    summary="Health of the API and what it depends on",
    responses={503: {"model": HealthReport, "description": "At least one component is down."}},
)
async def healthz(pool: PoolDep, feed: LiveFeedDep, configs: ConfigsDep) -> JSONResponse:
    """Checks the database (``SELECT 1``), the live Kafka consumer (assigned and the broker
    answering a metadata request) and the device configs. 200 when all are ok, else 503
    with the same body, so a load balancer can act on the status alone."""
    database, kafka = await asyncio.gather(_check_database(pool), _check_live(feed))
    components = {
        "database": database,
        "kafka_live_consumer": kafka,
        "device_configs": ComponentHealth(ok=True, detail=f"{len(configs.sites)} sites loaded"),
    }
    ok = all(c.ok for c in components.values())
    report = HealthReport(status="ok" if ok else "degraded", components=components)
    return JSONResponse(report.model_dump(mode="json"), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(metrics: MetricsDep) -> Response:
    """Request counts and latency by route template, SSE clients, live fan-out counters."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _check_database(pool: PoolDep) -> ComponentHealth:
    try:
        async with pool.connection(timeout=PROBE_TIMEOUT_S) as conn:
            await conn.execute("SELECT 1")
    except (PoolTimeout, PsycopgError) as exc:
        # The exception text (host names, user names) goes to the log, not to the caller.
        log.warning("health: database unreachable: %s: %s", type(exc).__name__, exc)
        return ComponentHealth(ok=False, detail="unreachable")
    return ComponentHealth(ok=True, detail="SELECT 1 answered")


async def _check_live(feed: LiveFeedDep) -> ComponentHealth:
    if not feed.running:
        return ComponentHealth(ok=False, detail="Kafka consumer not connected yet")
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            await feed.probe()
    except (KafkaError, TimeoutError, OSError) as exc:
        log.warning("health: Kafka unreachable: %s: %s", type(exc).__name__, exc)
        return ComponentHealth(ok=False, detail="broker unreachable")
    positions = feed.hub.positions
    return ComponentHealth(
        ok=True,
        detail=f"topic {feed.topic}: {len(positions)} partitions, "
        f"{feed.hub.client_count} SSE clients",
    )
