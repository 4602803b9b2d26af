"""Hourly visitor-flow updates for live feeds (``tp.flows.hourly.v1``, keyed by site).

Only origin-destination cells of at least ``min_count`` clients are included: smaller
cells are suppressed (left out, not rounded), the same rule as the database's
``flow_od_public(k)``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import AwareDatetime, Field

from schemas.envelope import SiteId, WireModel

Count = Annotated[int, Field(ge=0)]


class OdInflow(WireModel):
    origin: SiteId
    clients: Count


class FlowsHourlyV1(WireModel):
    """One site's visitor figures for one local hour, re-sent whenever they change."""

    version: int = 1
    site: SiteId
    hour: AwareDatetime = Field(description="Start of the local (Asia/Ho_Chi_Minh) hour.")
    day: date = Field(description="Local calendar day the hour belongs to.")
    unique_visitors: Count
    unique_visitors_stable: Count = Field(description="Without randomised-MAC clients.")
    new_visitors: Count = Field(description="First seen at this site today in this hour.")
    returning_visitors: Count = Field(description="Also seen here earlier today.")
    dwell_sessions: Count = Field(description="Sessions that ended in this hour.")
    dwell_median_s: Annotated[float, Field(ge=0)] | None = None
    dwell_p90_s: Annotated[float, Field(ge=0)] | None = None
    peak_connected: Count | None = None
    avg_connected: Annotated[float, Field(ge=0)] | None = None
    final: bool = Field(description="Allowed lateness has passed: this hour is settled.")
    min_count: Annotated[int, Field(ge=1)] = Field(description="k of the OD suppression.")
    inflows: list[OdInflow] = Field(
        default_factory=list, description="Arrivals this hour by origin site (cells >= k)."
    )
    emitted_at: AwareDatetime
