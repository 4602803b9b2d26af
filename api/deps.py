"""``Annotated`` dependency aliases: how routes reach the clients the lifespan created.

A route declares ``pool: PoolDep`` instead of reading ``request.app.state`` itself, so
the wiring lives in one place and a route's needs are visible in its signature.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from api.config import ApiTuning
from api.errors import ApiError
from api.live.consumer import LiveFeed
from api.metrics import ApiMetrics
from core.settings import Settings
from device_configs.models import DeviceConfigs, Site


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_tuning(request: Request) -> ApiTuning:
    tuning: ApiTuning = request.app.state.tuning
    return tuning


def get_pool(request: Request) -> AsyncConnectionPool:
    pool: AsyncConnectionPool = request.app.state.pool
    return pool


def get_configs(request: Request) -> DeviceConfigs:
    configs: DeviceConfigs = request.app.state.device_configs
    return configs


def get_metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


def get_live_feed(request: Request) -> LiveFeed:
    feed: LiveFeed = request.app.state.live
    return feed


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
TuningDep = Annotated[ApiTuning, Depends(get_tuning)]
PoolDep = Annotated[AsyncConnectionPool, Depends(get_pool)]
ConfigsDep = Annotated[DeviceConfigs, Depends(get_configs)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
LiveFeedDep = Annotated[LiveFeed, Depends(get_live_feed)]


def get_site(site: str, configs: ConfigsDep) -> Site:
    """The configured site named in the path, or a 404 JSON error."""
    try:
        return configs.site(site)
    except KeyError:
        raise ApiError(404, "site_not_found", f"no site with id {site!r}") from None


SiteDep = Annotated[Site, Depends(get_site)]
