"""What the IOC feature keeps on ``app.state.ioc``: its settings, secret and clients."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.requests import HTTPConnection

from api.errors import ApiError
from api.ioc.config import IocSettings
from api.ioc.tickets import TicketBook
from api.ioc.users import UserStore
from api.live.consumer import LiveFeed
from api.security.throttle import LoginThrottle
from core.kafka_client import KafkaClientSettings, as_kafka
from core.kafka_lifecycle import start_shielded
from schemas.stream_out import AlertChangedV1
from stream.alerts.store import AlertStore

log = logging.getLogger(__name__)

#: How long an operator action waits for Kafka before answering without the live echo.
PUBLISH_TIMEOUT_S = 5.0


class IocFeedMetrics:
    """The IOC feed's counters, under their own names in the app's registry (the core
    ``/api/v1/live`` feed keeps ``tp_api_live_*`` for itself)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.sse_clients = Gauge(
            "tp_api_ioc_live_clients", "Connected IOC live clients.", registry=r
        )
        self.sse_dropped = Counter(
            "tp_api_ioc_live_clients_dropped_total", "IOC clients dropped as too slow.", registry=r
        )
        self.live_consumed = Counter(
            "tp_api_ioc_live_messages_consumed_total", "IOC feed messages read.", registry=r
        )
        self.live_fanned_out = Counter(
            "tp_api_ioc_live_messages_fanned_out_total",
            "IOC messages queued to clients.",
            registry=r,
        )
        self.live_invalid = Counter(
            "tp_api_ioc_live_invalid_messages_total",
            "Messages on the IOC feed's topics that failed validation (skipped).",
            registry=r,
        )
        self.live_resumes = Counter(
            "tp_api_ioc_live_resumes_total", "IOC live resumes by source.", ["source"], registry=r
        )
        self.live_consumer_errors = Counter(
            "tp_api_ioc_live_consumer_errors_total", "IOC feed consumer restarts.", registry=r
        )
        self.actions = Counter(
            "tp_api_ioc_alert_actions_total",
            "Operator alert actions.",
            ["action", "outcome"],
            registry=r,
        )
        self.logins = Counter(
            "tp_api_ioc_logins_total",
            "Login attempts by outcome (ok, failed, throttled, busy).",
            ["outcome"],
            registry=r,
        )
        self.streams_revoked = Counter(
            "tp_api_ioc_streams_revoked_total",
            "Live streams ended because their session was revoked or expired.",
            registry=r,
        )
        self.publish_failures = Counter(
            "tp_api_ioc_alert_publish_failures_total",
            "Alert changes saved but not published to Kafka (consoles see them on reload).",
            registry=r,
        )


@dataclass
class ChangePublisher:
    """Publishes operator actions to ``tp.alerts.changes.v1``, keyed by site like the engine.

    Started lazily and restarted after a failure, so the API starts and serves while Kafka
    is down; the database stays the record either way.
    """

    bootstrap: str | KafkaClientSettings
    topic: str
    _producer: AIOKafkaProducer | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def publish(self, change: AlertChangedV1) -> None:
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):
            producer = await self._started()
            try:
                await producer.send_and_wait(
                    self.topic,
                    key=change.alert.site.encode(),
                    value=change.model_dump_json().encode(),
                )
            except KafkaError:
                await self.stop()
                raise

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    **as_kafka(self.bootstrap).aiokafka_producer(client_id="tourpulse-api-ioc")
                )
                try:
                    await start_shielded(producer)
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()


@dataclass
class IocState:
    settings: IocSettings
    secret: str
    users: UserStore
    alerts: AlertStore
    feed: LiveFeed
    publisher: ChangePublisher
    metrics: IocFeedMetrics
    tickets: TicketBook
    throttle: LoginThrottle = field(default_factory=LoginThrottle)


def get_ioc(request: HTTPConnection) -> IocState:
    ioc: IocState | None = getattr(request.app.state, "ioc", None)
    if ioc is None:
        raise ApiError(503, "ioc_unavailable", "the IOC feature is starting")
    return ioc
