"""Sites as GeoJSON, straight from the device configs (no database needed)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ConfigsDep, SiteDep
from api.models import (
    ERROR_RESPONSES,
    PointGeometry,
    SiteCollection,
    SiteFeature,
    SiteProperties,
)
from device_configs.models import DeviceConfigs, Site

router = APIRouter(prefix="/api/v1/sites", tags=["sites"])


@router.get(
    "",
    response_model=SiteCollection,
    summary="All sites as a GeoJSON FeatureCollection",
)
async def list_sites(configs: ConfigsDep) -> SiteCollection:
    """Point features (``[lon, lat]``, RFC 7946) with names, kind, capacity and device
    counts; ready for Leaflet/MapLibre ``geojson`` sources."""
    return SiteCollection(features=[site_feature(s, configs) for s in configs.sites])


@router.get(
    "/{site}",
    response_model=SiteFeature,
    summary="One site as a GeoJSON Feature",
    responses={404: ERROR_RESPONSES[404]},
)
async def get_site(site: SiteDep, configs: ConfigsDep) -> SiteFeature:
    return site_feature(site, configs)


def site_feature(site: Site, configs: DeviceConfigs) -> SiteFeature:
    return SiteFeature(
        id=site.id,
        geometry=PointGeometry(coordinates=(site.lon, site.lat)),
        properties=SiteProperties(
            id=site.id,
            name_vi=site.name_vi,
            name_en=site.name_en,
            kind=site.kind.value,
            capacity_persons=site.capacity_persons,
            timezone=site.timezone,
            access_points=len(configs.access_points_at(site.id)),
            cameras=sum(1 for c in configs.cameras if c.site == site.id),
        ),
    )
