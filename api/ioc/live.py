"""The IOC live feed: occupancy, fused occupancy, hourly flows and alert changes on one
resumable stream, as Server-Sent Events or over a WebSocket.

It is a second :class:`~api.live.consumer.LiveFeed` (own hub, own ``tp_api_ioc_*``
metrics) over four topics; ids are position vectors across all of them, so
``Last-Event-ID`` resume is exact for every kind. Every 5 s (and right after the snapshot)
a ``freshness`` event tells, per site and kind, when the newest message was produced, so
the console can grey out a site whose sensors went quiet instead of showing old numbers as
if they were live.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, WebSocket, WebSocketDisconnect
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ValidationError

from api.config import ApiTuning
from api.deps import ConfigsDep, TuningDep
from api.errors import ApiError
from api.ioc.auth import IocDep, authorise, stream_grant, stream_user
from api.ioc.state import IocState, get_ioc
from api.ioc.tickets import StreamGrant
from api.live.consumer import FeedTopic, LiveFeed, Parser
from api.live.hub import Hub
from api.live.positions import LiveMetrics
from api.live.stream import live_events
from api.models import ERROR_RESPONSES
from api.security.streams import client_ip, stream_slot
from core.settings import Settings
from schemas.flows import FlowsHourlyV1
from schemas.stream_out import AlertChangedV1, FusedOccupancyV1
from schemas.topics import KafkaTopic

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/ioc", tags=["ioc live"])

#: Seconds between ``freshness`` events.
FRESHNESS_EVERY_S = 5.0
#: WebSocket close code for a missing/invalid token (4000-4999: application-defined).
WS_UNAUTHORIZED = 4401
#: WebSocket close code when the client address has too many streams open.
WS_TOO_MANY = 4429


def _parser(model: type[BaseModel], site_of: str) -> Parser:
    def parse(raw: bytes) -> tuple[str, str] | None:
        try:
            message = model.model_validate_json(raw)
        except ValidationError:
            return None
        site = getattr(message, "site", None)
        if site is None:  # alert changes carry the site inside the alert view
            site = getattr(getattr(message, site_of, None), "site", None)
        if not isinstance(site, str):
            return None
        return site, message.model_dump_json()

    return parse


def build_feed(settings: Settings, tuning: ApiTuning, metrics: LiveMetrics) -> LiveFeed:
    extra = [
        FeedTopic(
            settings.kafka_topic(KafkaTopic.OCCUPANCY_FUSED),
            "fused",
            _parser(FusedOccupancyV1, "site"),
        ),
        FeedTopic(
            settings.kafka_topic(KafkaTopic.FLOWS_HOURLY),
            "flows",
            _parser(FlowsHourlyV1, "site"),
        ),
        FeedTopic(
            settings.kafka_topic(KafkaTopic.ALERT_CHANGES),
            "alert",
            _parser(AlertChangedV1, "alert"),
            keep_latest=False,
        ),
    ]
    hub = Hub(metrics, tuning.live_ring_size, tuning.live_client_queue)
    return LiveFeed(
        settings.kafka_client_settings(),
        settings.kafka_topic(KafkaTopic.OCCUPANCY_LIVE),
        hub,
        metrics,
        tuning.live_prime_messages,
        extra_topics=extra,
        replay_slots=tuning.live_replay_slots,
    )


def freshness(hub: Hub, site: str | None) -> dict[str, object]:
    sites = {
        s: {kind: datetime.fromtimestamp(t, UTC).isoformat() for kind, t in kinds.items()}
        for s, kinds in sorted(hub.freshness.items())
        if site is None or s == site
    }
    return {"now": datetime.now(UTC).isoformat(), "sites": sites}


def _ready(ioc: IocState, configs: ConfigsDep, site: str | None) -> LiveFeed:
    if site is not None and site not in {s.id for s in configs.sites}:
        raise ApiError(404, "site_not_found", f"no site with id {site!r}")
    if not ioc.feed.hub.ready:
        raise ApiError(
            503,
            "live_unavailable",
            "the IOC feed is not connected to Kafka yet; retry shortly",
            headers={"Retry-After": "5"},
        )
    return ioc.feed


async def _events(
    ioc: IocState,
    grant: StreamGrant,
    tuning: ApiTuning,
    site: str | None,
    last_event_id: str | None,
) -> AsyncGenerator[ServerSentEvent, None]:
    """The feed for one client, re-authorised every ``tuning.stream_reauth_s``: a revoked
    or expired session ends the stream (the ``freshness`` tick guarantees an event at
    least every few seconds, so the check runs even when the feed is quiet)."""
    feed = ioc.feed

    def tick(site: str | None) -> ServerSentEvent:
        return ServerSentEvent(event="freshness", data=freshness(feed.hub, site))

    next_check = time.monotonic() + tuning.stream_reauth_s
    events = live_events(feed, tuning, site, last_event_id, tick, FRESHNESS_EVERY_S)
    async with aclosing(events):
        async for event in events:
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + tuning.stream_reauth_s
                try:
                    await authorise(ioc, grant)
                except ApiError:
                    ioc.metrics.streams_revoked.inc()
                    log.info("ending %s's live stream: session revoked or expired", grant.username)
                    return
            yield event


SiteFilter = Annotated[str | None, Query(max_length=64, description="Only this site.")]


@router.get(
    "/live",
    response_class=EventSourceResponse,
    summary="IOC live feed: occupancy, fused, flows, alert changes (SSE)",
    responses={
        401: {"description": "No valid session or stream ticket."},
        404: ERROR_RESPONSES[404],
        429: {"description": "Too many open streams from this address."},
        503: ERROR_RESPONSES[503],
    },
    dependencies=[Depends(stream_slot)],
)
async def live(
    ioc: IocDep,
    configs: ConfigsDep,
    tuning: TuningDep,
    grant: Annotated[StreamGrant, Depends(stream_user)],
    site: SiteFilter = None,
    last_event_id: Annotated[str | None, Header()] = None,
    resume: Annotated[
        str | None,
        Query(
            alias="last_event_id",
            max_length=20_000,
            description="Resume position for clients that open a new EventSource (which "
            "cannot set Last-Event-ID); the header wins.",
        ),
    ] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Events `occupancy` (OccupancyUpdateV1), `fused` (FusedOccupancyV1), `flows`
    (FlowsHourlyV1), `alert` (AlertChangedV1), and `freshness` (no id). Snapshot of the
    latest state per site and kind first (alerts: load the queue from `/api/v1/alerts`),
    then live. Resume with `Last-Event-ID`. Needs a viewer token in the header, or for
    EventSource a one-time `?ticket=` from `POST /api/v1/auth/stream-ticket`; the session
    is re-checked while the stream runs, and a revoked one ends it."""
    _ready(ioc, configs, site)
    events = _events(ioc, grant, tuning, site, last_event_id or resume)
    async with aclosing(events):
        async for event in events:
            yield event


@router.websocket("/ws")
async def live_ws(
    websocket: WebSocket,
    site: SiteFilter = None,
    last_event_id: Annotated[str | None, Query(max_length=20_000)] = None,
    ticket: Annotated[str | None, Query(max_length=2048)] = None,
) -> None:
    """The same feed as JSON text frames ``{"event", "id", "data"}``; resume by passing the
    last ``id`` as ``?last_event_id=``. Authenticate with a bearer header or a one-time
    ``?ticket=``. Closes with 4401 on a bad or revoked session, 4429 over the per-address
    stream cap, 1013 when the feed is not connected yet or the server is full."""
    app = websocket.app
    limiter = app.state.streams
    ip = client_ip(websocket)
    try:
        ioc = get_ioc(websocket)
        grant = await stream_grant(ioc, websocket, ticket)
        _ready(ioc, app.state.device_configs, site)
        limiter.acquire(ip)
    except ApiError as exc:
        code = {401: WS_UNAUTHORIZED, 429: WS_TOO_MANY}.get(exc.status, 1013)
        # Accept first: a close before the handshake is a bare HTTP 403 to the browser,
        # which hides the reason (4401 = log in again, 4429/1013 = retry later).
        await websocket.accept()
        await websocket.close(code, exc.message[:120])
        return
    try:
        await websocket.accept()
        events = _events(ioc, grant, app.state.tuning, site, last_event_id)
        async with aclosing(events):
            async for event in events:
                if event.event is None:
                    continue  # the retry/comment preamble means nothing here
                data = event.data if event.raw_data is None else json.loads(event.raw_data)
                await websocket.send_text(
                    json.dumps({"event": event.event, "id": event.id, "data": data})
                )
        await websocket.close(WS_UNAUTHORIZED, "session revoked or expired")
    except WebSocketDisconnect:
        return
    finally:
        limiter.release(ip)
