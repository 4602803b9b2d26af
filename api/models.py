"""Request and response models of the API, apart from the routes that use them.

They are the public contract of the HTTP API (and its OpenAPI document), so every field
says what it means; wire models of the event contract stay in ``schemas/``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ApiModel(BaseModel):
    model_config = ConfigDict(frozen=True)


class ErrorDetail(ApiModel):
    code: str = Field(description="Stable machine-readable code, e.g. 'site_not_found'.")
    message: str = Field(description="Human-readable explanation.")
    details: list[dict[str, object]] | None = Field(
        default=None, description="Per-field problems of a 422."
    )


class ErrorResponse(ApiModel):
    """The body of every non-2xx response."""

    error: ErrorDetail


#: OpenAPI ``responses=`` entries for the error statuses a route may return.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "Unknown resource."},
    422: {"model": ErrorResponse, "description": "Invalid parameters."},
    503: {"model": ErrorResponse, "description": "A backing service is unavailable."},
}


# --- sites (GeoJSON, RFC 7946) ---


class PointGeometry(ApiModel):
    type: Literal["Point"] = "Point"
    coordinates: tuple[float, float] = Field(description="[longitude, latitude], WGS84.")


class SiteProperties(ApiModel):
    id: str
    name_vi: str = Field(description="Vietnamese name.")
    name_en: str = Field(description="English name.")
    kind: str = Field(description="urban | rural | craft_village | nature | beach")
    capacity_persons: int = Field(description="Planning capacity (illustrative).")
    timezone: str
    access_points: int = Field(description="Number of configured Wi-Fi access points.")
    cameras: int = Field(description="Number of configured cameras.")


class SiteFeature(ApiModel):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: PointGeometry
    properties: SiteProperties


class SiteCollection(ApiModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[SiteFeature]


# --- occupancy history ---


class OccupancyBucket(ApiModel):
    start: datetime = Field(description="Bucket start (UTC); the bucket is [start, start+step).")
    minutes: int = Field(description="Minutes with data in this bucket (0: no data, values null).")
    connected_max: int | None = Field(description="Peak clients connected in any minute.")
    connected_avg: float | None = Field(description="Mean of the per-minute connected counts.")
    new_sessions: int | None = Field(description="Sessions started in the bucket.")
    ended_sessions: int | None = Field(description="Sessions ended in the bucket.")


class OccupancyHistory(ApiModel):
    site: str
    from_: datetime = Field(alias="from", description="Inclusive start of the range (UTC).")
    to: datetime = Field(description="Exclusive end of the range (UTC).")
    step: str = Field(description="Bucket width as an ISO-8601 duration, e.g. PT5M.")
    step_seconds: int
    buckets: list[OccupancyBucket]

    model_config = ConfigDict(frozen=True, populate_by_name=True)


# --- health ---


class ComponentHealth(ApiModel):
    ok: bool
    detail: str = Field(description="What was checked, or why it failed.")


class HealthReport(ApiModel):
    status: Literal["ok", "degraded"]
    components: dict[str, ComponentHealth]
