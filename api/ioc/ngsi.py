"""FIWARE export: NGSI-LD entities for the city's data platform (normalised form).

* ``CrowdFlowObserved`` (Smart Data Models, Transportation): one entity per site with the
  latest fused occupancy: ``peopleCount``, ``occupancy`` (share of capacity, 0..1),
  ``congested`` (>= the congestion share), ``dateObserved``, ``location``, ``name``.
* ``TourismPresenceObserved``: TourPulse's own type (no Smart Data Model covers hourly
  visitor presence), one entity per site and local hour from ``flow_hourly``:
  unique / new / returning visitors and dwell percentiles, with ``dateObservedFrom/To``.
  Its terms are defined under the TourPulse context below.

Only aggregates leave: counts per site (OD cells are not exported here at all).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Response

from api.deps import ConfigsDep, PoolDep
from api.errors import ApiError
from api.ioc.auth import IocDep
from api.ioc.flows import DateQuery, hour_bounds, hourly_rows, k_suppress, today
from api.models import ERROR_RESPONSES
from device_configs.models import Site

router = APIRouter(prefix="/api/v1/ngsi-ld", tags=["fiware"])

CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
SDM_CONTEXT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/"
    "master/context.jsonld"
)
TOURPULSE_CONTEXT: dict[str, str] = {
    "tp": "https://tourpulse.example.org/ns#",
    "TourismPresenceObserved": "tp:TourismPresenceObserved",
    "uniqueVisitors": "tp:uniqueVisitors",
    "uniqueVisitorsStable": "tp:uniqueVisitorsStable",
    "newVisitors": "tp:newVisitors",
    "returningVisitors": "tp:returningVisitors",
    "dwellTimeMedian": "tp:dwellTimeMedian",
    "dwellTimeP90": "tp:dwellTimeP90",
    "peopleCountLow": "tp:peopleCountLow",
    "peopleCountHigh": "tp:peopleCountHigh",
    "degraded": "tp:degraded",
    "estimateSource": "tp:estimateSource",
    "estimateConfidence": "tp:estimateConfidence",
    "sensorFlags": "tp:sensorFlags",
    "refSite": "tp:refSite",
}
#: A site at or above this share of its capacity is reported ``congested``.
CONGESTED_SHARE = 0.9
MEDIA_TYPE = "application/ld+json"


def _urn(kind: str, *parts: str) -> str:
    return ":".join(("urn:ngsi-ld", kind, "hcmc", *parts))


def _prop(value: Any, observed_at: str | None = None, unit: str | None = None) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": "Property", "value": value}
    if observed_at:
        prop["observedAt"] = observed_at
    if unit:
        prop["unitCode"] = unit
    return prop


def _place(site: Site) -> dict[str, Any]:
    return {
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [site.lon, site.lat]},
        },
        "name": _prop(site.name_en),
        "alternateName": _prop(site.name_vi),
    }


def _ld(entities: list[dict[str, Any]], context: list[Any]) -> Response:
    for entity in entities:
        entity["@context"] = context
    return Response(json.dumps(entities, ensure_ascii=False), media_type=MEDIA_TYPE)


def crowd_flow_entity(site: Site, fused: dict[str, Any]) -> dict[str, Any]:
    observed = _iso(fused["as_of"])
    people = round(float(fused["people"]))
    capacity = fused.get("capacity") or site.capacity_persons
    share = people / capacity
    return {
        "id": _urn("CrowdFlowObserved", site.id),
        "type": "CrowdFlowObserved",
        "dateObserved": _prop(observed),
        "peopleCount": _prop(people, observed),
        "peopleCountLow": _prop(round(float(fused["low"])), observed),
        "peopleCountHigh": _prop(round(float(fused["high"])), observed),
        "occupancy": _prop(round(min(share, 1.0), 4), observed),
        "congested": _prop(share >= CONGESTED_SHARE, observed),
        "degraded": _prop(bool(fused.get("degraded")), observed),
        **_estimate_quality(fused, observed),
        "refSite": {"type": "Relationship", "object": _urn("TouristDestination", site.id)},
        **_place(site),
    }


def _estimate_quality(fused: dict[str, Any], observed: str) -> dict[str, Any]:
    """What the count rests on and how far to trust it (absent from older messages)."""
    quality = {
        "estimateSource": fused.get("source"),
        "estimateConfidence": fused.get("confidence"),
        "sensorFlags": fused.get("flags") or None,
    }
    return {k: _prop(v, observed) for k, v in quality.items() if v is not None}


def _iso(value: str) -> str:
    """As UTC with a Z, the form NGSI-LD brokers index best."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@router.get(
    "/CrowdFlowObserved",
    summary="Latest fused occupancy per site as NGSI-LD CrowdFlowObserved",
    response_class=Response,
    responses={200: {"content": {MEDIA_TYPE: {}}}, 404: ERROR_RESPONSES[404]},
)
async def crowd_flow_observed(
    ioc: IocDep, configs: ConfigsDep, site: str | None = Query(default=None, max_length=64)
) -> Response:
    """Sites with no fused estimate yet (no Wi-Fi or camera data since the API started and
    within the feed's priming window) are left out rather than reported as zero."""
    sites = _sites(configs, site)
    latest = ioc.feed.hub.latest_of("fused")
    entities = [
        crowd_flow_entity(s, json.loads(latest[s.id].data)) for s in sites if s.id in latest
    ]
    return _ld(entities, [SDM_CONTEXT, TOURPULSE_CONTEXT, CORE_CONTEXT])


@router.get(
    "/TourismPresenceObserved",
    summary="Hourly visitor presence per site as NGSI-LD entities",
    response_class=Response,
    responses={200: {"content": {MEDIA_TYPE: {}}}, 404: ERROR_RESPONSES[404]},
)
async def tourism_presence_observed(
    pool: PoolDep,
    configs: ConfigsDep,
    ioc: IocDep,
    date: DateQuery = None,
    site: str | None = Query(default=None, max_length=64),
) -> Response:
    """Counts below k are left out (k-suppression, as on the hourly flows route)."""
    sites = {s.id: s for s in _sites(configs, site)}
    k = ioc.settings.od_min_count
    rows = [k_suppress(r, k) for r in await hourly_rows(pool, date or today(), site)]
    entities = []
    for r in rows:
        if r["site"] not in sites:
            continue
        start, end = hour_bounds(r["hour"])
        observed = _iso(end.isoformat())
        entity: dict[str, Any] = {
            "id": _urn("TourismPresenceObserved", r["site"], start.strftime("%Y%m%dT%H")),
            "type": "TourismPresenceObserved",
            "dateObservedFrom": _prop(_iso(start.isoformat())),
            "dateObservedTo": _prop(observed),
            "refSite": {"type": "Relationship", "object": _urn("TouristDestination", r["site"])},
            **_place(sites[r["site"]]),
        }
        for key, column in (
            ("uniqueVisitors", "unique_visitors"),
            ("uniqueVisitorsStable", "unique_visitors_stable"),
            ("newVisitors", "new_visitors"),
            ("returningVisitors", "returning_visitors"),
        ):
            if r[column] is not None:
                entity[key] = _prop(r[column], observed)
        for key, column in (("dwellTimeMedian", "dwell_median_s"), ("dwellTimeP90", "dwell_p90_s")):
            if r[column] is not None:
                entity[key] = _prop(round(r[column], 1), observed, unit="SEC")
        entities.append(entity)
    return _ld(entities, [TOURPULSE_CONTEXT, CORE_CONTEXT])


def _sites(configs: ConfigsDep, site: str | None) -> list[Site]:
    if site is None:
        return list(configs.sites)
    try:
        return [configs.site(site)]
    except KeyError:
        raise ApiError(404, "site_not_found", f"no site with id {site!r}") from None
