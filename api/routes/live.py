"""Live occupancy as Server-Sent Events, resumable with ``Last-Event-ID``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.deps import ConfigsDep, LiveFeedDep, TuningDep
from api.errors import ApiError
from api.live.consumer import LiveFeed
from api.live.stream import live_events
from api.models import ERROR_RESPONSES
from api.security.streams import stream_slot

router = APIRouter(prefix="/api/v1", tags=["live"])

SiteFilter = Annotated[
    str | None, Query(description="Only this site's updates (default: all sites).")
]


def live_ready(feed: LiveFeedDep, configs: ConfigsDep, site: SiteFilter = None) -> LiveFeed:
    """Refuse before streaming starts (a stream cannot turn into an error response later)."""
    if site is not None and site not in {s.id for s in configs.sites}:
        raise ApiError(404, "site_not_found", f"no site with id {site!r}")
    if not feed.hub.ready:
        raise ApiError(
            503,
            "live_unavailable",
            "the live feed is not connected to Kafka yet; retry shortly",
            headers={"Retry-After": "5"},
        )
    return feed


@router.get(
    "/live",
    response_class=EventSourceResponse,
    summary="Live occupancy updates (Server-Sent Events)",
    responses={
        404: ERROR_RESPONSES[404],
        429: {"description": "Too many open streams from this address."},
        503: ERROR_RESPONSES[503],
    },
    dependencies=[Depends(stream_slot)],
)
async def live(
    feed: Annotated[LiveFeed, Depends(live_ready)],
    tuning: TuningDep,
    site: SiteFilter = None,
    last_event_id: Annotated[
        str | None,
        Header(description="Sent by EventSource on reconnect: resume after this event."),
    ] = None,
) -> AsyncIterator[ServerSentEvent]:
    """A `text/event-stream` of `occupancy` events whose data is an
    `OccupancyUpdateV1` JSON object.

    * On connect: the latest known update of each site (snapshot), then live updates.
    * Each event's `id` is a Kafka position vector (`partition-offset` pairs). On reconnect
      with `Last-Event-ID`, the events missed since are sent (from memory, or re-read from
      Kafka), each exactly once. If they are no longer available (beyond the replay limit,
      which is small for this anonymous feed, or Kafka retention), a fresh snapshot is
      sent instead.
    * A `: ping` comment every 15 s keeps proxies from closing an idle stream; `retry:`
      suggests the reconnect delay.
    * A client that falls too far behind is disconnected and resumes by its last id.
    """
    async for event in live_events(
        feed, tuning, site, last_event_id, replay_max=tuning.live_replay_max_anonymous
    ):
        yield event
