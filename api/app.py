"""The FastAPI app factory: clients in the lifespan, feature routers mounted by name.

Adding a feature (portal, cameras, IOC feeds, ...) is one line in :data:`FEATURE_MODULES`.
A feature module exposes

- ``router``: an ``APIRouter`` with its own prefix and tags, and optionally
- ``lifespan(app)``: an async context manager for clients only that feature needs (an
  MQTT client, a WebRTC relay). It runs after the core clients exist (``app.state.pool``,
  ``.settings``, ``.device_configs``, ``.metrics``, ``.live``) and is exited before they
  close, in reverse order of the list.

Routes reach shared clients through the aliases in :mod:`api.deps` and raise
:class:`api.errors.ApiError` for expected failures (JSON error body for free).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from types import ModuleType

from fastapi import APIRouter, FastAPI
from psycopg_pool import AsyncConnectionPool

from api.config import ApiTuning
from api.errors import install_error_handlers
from api.live.consumer import LiveFeed
from api.live.hub import Hub
from api.metrics import ApiMetrics, MetricsMiddleware
from api.openapi_doc import install_common_responses
from api.security.body import BodyLimitMiddleware
from api.security.streams import StreamLimiter
from core.settings import Settings, get_settings
from device_configs.loader import load_device_configs
from schemas.topics import KafkaTopic

#: The API's own routes (what ``create_app(features=CORE_FEATURES)`` serves alone).
CORE_FEATURES: tuple[str, ...] = (
    "api.routes.health",
    "api.routes.sites",
    "api.routes.occupancy",
    "api.routes.live",
)

FEATURE_MODULES: tuple[str, ...] = (
    *CORE_FEATURES,
    "api.portal.router",
    "api.cameras.router",
    "api.ioc.router",
)

#: Long-lived streaming routes: counted, but kept out of the latency histogram.
STREAMING_ROUTES = frozenset({"/api/v1/live", "/api/v1/ioc/live", "/api/v1/ioc/ws"})

DESCRIPTION = """\
TourPulse's thin read API over the real-time pipeline (edge -> MQTT -> Kafka -> workers ->
PostgreSQL) for Ho Chi Minh City's tourist sites.

* **Sites** as GeoJSON for maps.
* **Occupancy history** from 1-minute rollups, re-bucketed on request.
* **Live occupancy** as Server-Sent Events with resumable ids.

Every error has the body `{"error": {"code": ..., "message": ...}}`.
"""


def create_app(
    settings: Settings | None = None,
    tuning: ApiTuning | None = None,
    features: Sequence[str] = FEATURE_MODULES,
) -> FastAPI:
    """The API with ``features`` mounted (all of them unless a test narrows it down)."""
    settings = settings or get_settings()
    tuning = tuning or ApiTuning()
    # Loaded eagerly: a broken config must stop the API at start-up, not on first request.
    configs = load_device_configs(settings.device_configs)
    modules = [importlib.import_module(name) for name in features]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            pool = AsyncConnectionPool(
                settings.database_url,
                min_size=1,
                max_size=tuning.db_pool_max,
                timeout=tuning.db_timeout_s,
                kwargs={"connect_timeout": max(1, int(tuning.db_timeout_s))},
                check=AsyncConnectionPool.check_connection,
                open=False,
                name="api",
            )
            # wait=False: the API starts (and reports 503s) even while the DB is down.
            await pool.open(wait=False)
            stack.push_async_callback(pool.close)
            app.state.pool = pool
            hub = Hub(app.state.metrics, tuning.live_ring_size, tuning.live_client_queue)
            feed = LiveFeed(
                settings.kafka_client_settings(),
                settings.kafka_topic(KafkaTopic.OCCUPANCY_LIVE),
                hub,
                app.state.metrics,
                tuning.live_prime_messages,
                replay_slots=tuning.live_replay_slots,
            )
            feed.start()
            stack.push_async_callback(feed.stop)
            app.state.live = feed
            for module in modules:
                feature_lifespan = getattr(module, "lifespan", None)
                if feature_lifespan is not None:
                    await stack.enter_async_context(feature_lifespan(app))
            yield

    app = FastAPI(
        title="TourPulse API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if tuning.docs else None,
        redoc_url="/redoc" if tuning.docs else None,
        openapi_url="/openapi.json" if tuning.docs else None,
    )
    app.state.settings = settings
    app.state.tuning = tuning
    app.state.device_configs = configs
    app.state.metrics = ApiMetrics()
    app.state.streams = StreamLimiter(
        tuning.streams_max, tuning.streams_max_per_ip, app.state.metrics.registry
    )
    install_error_handlers(app)
    for module in modules:
        app.include_router(_router_of(module))
    install_common_responses(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=tuning.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics, streaming=STREAMING_ROUTES)
    return app


def _router_of(module: ModuleType) -> APIRouter:
    router = getattr(module, "router", None)
    if not isinstance(router, APIRouter):
        raise RuntimeError(f"feature module {module.__name__} has no APIRouter 'router'")
    return router
