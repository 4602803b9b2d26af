"""Public hourly flows are k-suppressed: a quiet hour's small counts never leave the API."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from api.app import create_app
from api.ioc.flows import k_suppress
from core.settings import Settings
from tests.support.api_support import asgi_client

pytestmark = pytest.mark.integration
SITE = "ben-thanh-market"


def test_k_suppress_nulls_small_counts_and_their_statistics() -> None:
    row = {
        "unique_visitors": 12,
        "unique_visitors_stable": 9,
        "new_visitors": 1,
        "returning_visitors": 11,
        "dwell_sessions": 2,
        "dwell_median_s": 14400.0,
        "dwell_p90_s": 15000.0,
        "peak_connected": 7,
    }
    out = k_suppress(row, 10)
    assert out["unique_visitors"] == 12 and out["returning_visitors"] == 11
    assert out["new_visitors"] is None and out["unique_visitors_stable"] is None
    assert out["dwell_median_s"] is None and out["dwell_p90_s"] is None
    assert out["peak_connected"] == 7
    assert set(out["suppressed"]) == {
        "unique_visitors_stable",
        "new_visitors",
        "dwell_sessions",
        "dwell_median_s",
        "dwell_p90_s",
    }


async def test_hourly_route_and_ngsi_export_suppress_a_quiet_hour(
    settings: Settings, database_url: str
) -> None:
    day = date(2026, 3, 14)
    h3 = datetime(2026, 3, 13, 20, tzinfo=UTC)  # 03:00 in HCMC: one night owl
    with psycopg.connect(database_url) as conn:
        for hour, counts in (
            (h3, (1, 1, 1, 0, 1)),
            (h3 + timedelta(hours=6), (40, 35, 30, 10, 12)),
        ):
            conn.execute(
                "INSERT INTO flow_hourly (site, hour, day, unique_visitors,"
                " unique_visitors_stable, new_visitors, returning_visitors, dwell_sessions,"
                " dwell_median_s, dwell_p90_s) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
                " 14400.0, 15000.0)",
                (SITE, hour, day, *counts),
            )
    app = create_app(settings)
    async with asgi_client(app) as client:
        body = (
            await client.get(f"/api/v1/sites/{SITE}/flows/hourly", params={"date": "2026-03-14"})
        ).json()
        quiet, busy = body["hours"]
        assert body["min_count"] == 10
        assert quiet["unique_visitors"] is None and quiet["dwell_median_s"] is None
        assert "1" not in {str(quiet[c]) for c in quiet["suppressed"]}
        assert busy["unique_visitors"] == 40 and busy["dwell_median_s"] == 14400.0
        assert busy["suppressed"] == []
        presence = (
            await client.get(
                "/api/v1/ngsi-ld/TourismPresenceObserved", params={"date": "2026-03-14"}
            )
        ).json()
        night, day_entity = presence
        assert "uniqueVisitors" not in night and "dwellTimeMedian" not in night
        assert day_entity["uniqueVisitors"]["value"] == 40
