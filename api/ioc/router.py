"""The IOC feature as mounted by :mod:`api.app` (``"api.ioc.router"`` in FEATURE_MODULES).

The lifespan checks the signing secret first (an insecure production config stops the
API from starting), then builds what the routes share: user and alert stores on the core
pool, the four-topic live feed and the Kafka publisher of operator actions. None of them
needs PostgreSQL or Kafka to be up at start-up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import APIRouter, FastAPI

from api.ioc import alerts, auth, console, flows, live, ngsi
from api.ioc.config import IocSettings, resolve_secret
from api.ioc.state import ChangePublisher, IocFeedMetrics, IocState
from api.ioc.tickets import TicketBook
from api.ioc.users import UserStore
from schemas.topics import KafkaTopic
from stream.alerts.store import AlertStore

router = APIRouter()
for _module in (auth, alerts, flows, ngsi, live, console):
    router.include_router(_module.router)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = app.state.settings
    ioc_settings = IocSettings()
    secret = resolve_secret(ioc_settings, settings.data_dir)
    pool = app.state.pool
    metrics = getattr(app.state, "ioc_metrics", None)
    if metrics is None:  # once per app: a registry refuses the same names twice
        metrics = app.state.ioc_metrics = IocFeedMetrics(app.state.metrics.registry)
    feed = live.build_feed(settings, app.state.tuning, metrics)
    publisher = ChangePublisher(
        settings.kafka_client_settings(), settings.kafka_topic(KafkaTopic.ALERT_CHANGES)
    )
    configs = app.state.device_configs
    app.state.ioc = IocState(
        settings=ioc_settings,
        secret=secret,
        users=UserStore(pool),
        alerts=AlertStore(
            pool, incident_window=timedelta(seconds=configs.alerting.incident_window_s)
        ),
        feed=feed,
        publisher=publisher,
        metrics=metrics,
        tickets=TicketBook(secret),
    )
    feed.start()
    try:
        yield
    finally:
        await feed.stop()
        await publisher.stop()
        del app.state.ioc
