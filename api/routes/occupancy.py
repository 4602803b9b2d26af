"""Occupancy history of one site from the 1-minute rollups in PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime

from api.deps import PoolDep, SiteDep, TuningDep
from api.errors import ApiError
from api.history import (
    STEP_ALIASES,
    bucket_origin,
    count_buckets,
    fetch_history_json,
    iso_duration,
    parse_step,
)
from api.models import ERROR_RESPONSES, OccupancyHistory

router = APIRouter(prefix="/api/v1/sites", tags=["occupancy"])

#: Range returned when the client gives no ``from``.
DEFAULT_RANGE = timedelta(hours=1)


@router.get(
    "/{site}/occupancy",
    response_model=OccupancyHistory,
    summary="Occupancy history of a site, bucketed",
    responses=ERROR_RESPONSES,
)
async def occupancy_history(
    site: SiteDep,
    pool: PoolDep,
    tuning: TuningDep,
    from_: Annotated[
        AwareDatetime | None,
        Query(alias="from", description="Range start, ISO-8601 with offset. Default: to - 1h."),
    ] = None,
    to: Annotated[
        AwareDatetime | None,
        Query(description="Range end (exclusive), ISO-8601 with offset. Default: now."),
    ] = None,
    step: Annotated[
        str,
        Query(
            description=f"Bucket width: {', '.join(STEP_ALIASES)} or an ISO-8601 duration "
            "of whole minutes (PT30M, PT6H, P1D). Day buckets start at local midnight.",
        ),
    ] = "1m",
) -> Response:
    """Per bucket: peak and mean clients connected, sessions started and ended. Buckets
    without data are included with ``minutes: 0`` and null values."""
    try:
        width = parse_step(step)
    except ValueError as exc:
        raise ApiError(422, "invalid_step", str(exc)) from None
    end = (to or datetime.now(UTC)).astimezone(UTC)
    start = (from_ or end - DEFAULT_RANGE).astimezone(UTC)
    if start >= end:
        raise ApiError(422, "invalid_range", f"'from' ({start}) must be before 'to' ({end})")
    origin = bucket_origin(site.timezone)
    buckets = count_buckets(start, end, width, origin)
    if buckets > tuning.history_max_buckets:
        raise ApiError(
            422,
            "too_many_buckets",
            f"{buckets} buckets of {iso_duration(width)} requested; the limit is "
            f"{tuning.history_max_buckets}: use a larger step or a shorter range",
        )
    buckets_json = await fetch_history_json(pool, site.id, start, end, width, origin)
    # The buckets arrive as JSON text from PostgreSQL; the rest is the response model's own
    # JSON, so the body matches the documented schema field for field.
    head = OccupancyHistory(
        site=site.id,
        from_=start,
        to=end,
        step=iso_duration(width),
        step_seconds=int(width.total_seconds()),
        buckets=[],
    ).model_dump_json(by_alias=True, exclude={"buckets"})
    body = head[:-1] + ',"buckets":' + buckets_json + "}"
    return Response(content=body, media_type="application/json")
