"""Sites, occupancy history, errors, health and metrics against real PostgreSQL and Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from api.app import CORE_FEATURES, create_app
from api.config import ApiTuning
from api.models import OccupancyHistory
from core.settings import Settings
from schemas.topics import KafkaTopic
from tests.support.api_support import asgi_client
from tests.support.net import until

pytestmark = pytest.mark.integration
#: Run on TimescaleDB and on plain PostgreSQL (conftest.pytest_generate_tests).
BOTH_BACKENDS = True

T0 = datetime(2026, 3, 10, 0, 0, tzinfo=UTC)
SITE = "ben-thanh-market"


async def test_sites_geojson_has_the_20_hcmc_sites(settings: Settings) -> None:
    async with asgi_client(create_app(settings)) as client:
        response = await client.get("/api/v1/sites")
        one = await client.get(f"/api/v1/sites/{SITE}")
    assert response.status_code == 200
    body = response.json()
    assert body["type"] == "FeatureCollection"
    features = body["features"]
    assert len(features) == 20
    assert len({f["id"] for f in features}) == 20
    for feature in features:
        lon, lat = feature["geometry"]["coordinates"]
        assert feature["geometry"]["type"] == "Point"
        # The HCMC region (incl. former Binh Duong, Ba Ria - Vung Tau and Con Dao): lon first.
        assert 106.0 < lon < 107.7 and 8.5 < lat < 11.6, feature["id"]
        props = feature["properties"]
        assert props["name_vi"] and props["name_en"] and props["capacity_persons"] > 0
    ben_thanh = next(f for f in features if f["id"] == SITE)["properties"]
    assert (ben_thanh["access_points"], ben_thanh["cameras"]) == (6, 2)
    assert one.status_code == 200 and one.json()["properties"]["name_en"] == "Ben Thanh Market"


def _insert(database_url: str, rows: list[tuple[str, datetime, int, int, int]]) -> None:
    with psycopg.connect(database_url) as conn:
        conn.cursor().executemany(
            "INSERT INTO occupancy_minute (site, minute, connected, new_sessions, ended_sessions)"
            " VALUES (%s, %s, %s, %s, %s)",
            rows,
        )


async def _history(client: Any, site: str = SITE, **params: str) -> Any:
    return await client.get(f"/api/v1/sites/{site}/occupancy", params=params)


async def test_occupancy_history_buckets(settings: Settings, database_url: str) -> None:
    # 30 minutes from 00:00: connected = m, new = 1 each, ended = m % 2; plus another site.
    rows = [(SITE, T0 + timedelta(minutes=m), m, 1, m % 2) for m in range(30)]
    rows.append(("notre-dame-cathedral", T0, 999, 999, 999))
    _insert(database_url, rows)
    frm, to = T0.isoformat(), (T0 + timedelta(minutes=30)).isoformat()
    async with asgi_client(create_app(settings)) as client:
        by_minute = await _history(client, **{"from": frm, "to": to, "step": "1m"})
        by_15 = await _history(client, **{"from": frm, "to": to, "step": "15m"})
        iso_10 = await _history(client, **{"from": frm, "to": to, "step": "PT10M"})
        hour = await _history(
            client, **{"from": frm, "to": (T0 + timedelta(hours=2)).isoformat(), "step": "1h"}
        )
        day = await _history(client, **{"from": frm, "to": to, "step": "1d"})
    assert by_minute.status_code == 200, by_minute.text
    minutes = by_minute.json()["buckets"]
    assert [b["connected_max"] for b in minutes] == list(range(30))
    assert by_15.json()["step"] == "PT15M" and by_15.json()["step_seconds"] == 900
    assert [
        (b["start"], b["minutes"], b["connected_max"], b["new_sessions"], b["ended_sessions"])
        for b in by_15.json()["buckets"]
    ] == [("2026-03-10T00:00:00Z", 15, 14, 15, 7), ("2026-03-10T00:15:00Z", 15, 29, 15, 8)]
    assert [b["connected_avg"] for b in by_15.json()["buckets"]] == [7.0, 22.0]
    assert [b["connected_max"] for b in iso_10.json()["buckets"]] == [9, 19, 29]
    hours = hour.json()["buckets"]
    assert [(b["minutes"], b["new_sessions"]) for b in hours] == [(30, 30), (0, None)]
    assert hours[1] == {
        "start": "2026-03-10T01:00:00Z",
        "minutes": 0,
        "connected_max": None,
        "connected_avg": None,
        "new_sessions": None,
        "ended_sessions": None,
    }
    # The buckets are rendered by PostgreSQL: the whole body must still be the documented model.
    for response in (by_minute, by_15, iso_10, hour, day):
        assert response.headers["content-type"] == "application/json"
        OccupancyHistory.model_validate_json(response.text)
    assert by_15.json()["from"] == "2026-03-10T00:00:00Z"
    (local_day,) = day.json()["buckets"]  # 00:00 UTC is 07:00 in HCMC: the day began at 17:00Z
    assert local_day["start"] == "2026-03-09T17:00:00Z" and local_day["minutes"] == 30


async def test_occupancy_validation_errors(settings: Settings) -> None:
    now = datetime.now(UTC)
    async with asgi_client(create_app(settings, ApiTuning(history_max_buckets=100))) as client:
        unknown = await _history(client, site="no-such-site")
        backwards = await _history(
            client, **{"from": now.isoformat(), "to": (now - timedelta(hours=1)).isoformat()}
        )
        too_many = await _history(
            client,
            **{"from": (T0 - timedelta(days=1)).isoformat(), "to": T0.isoformat(), "step": "5m"},
        )
        bad_step = await _history(client, step="P1M")
        naive = await _history(client, **{"from": "2026-03-10T00:00:00"})
        default = await _history(client)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "site_not_found"
    assert backwards.status_code == 422 and backwards.json()["error"]["code"] == "invalid_range"
    assert too_many.status_code == 422
    assert too_many.json()["error"] == {
        "code": "too_many_buckets",
        "message": "288 buckets of PT5M requested; the limit is 100: "
        "use a larger step or a shorter range",
    }
    assert bad_step.status_code == 422 and "no months" in bad_step.json()["error"]["message"]
    assert naive.status_code == 422 and naive.json()["error"]["code"] == "validation_error"
    assert default.status_code == 200, default.text
    body = default.json()
    assert body["step"] == "PT1M" and len(body["buckets"]) in (60, 61)
    assert datetime.fromisoformat(body["to"]) - datetime.fromisoformat(body["from"]) == timedelta(
        hours=1
    )


def _database_down(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"database_url_env": "postgresql://tourpulse:tourpulse@127.0.0.1:1/tourpulse"}
    )


async def test_database_down_gives_503_json(settings: Settings) -> None:
    app = create_app(_database_down(settings), ApiTuning(db_timeout_s=1.0), CORE_FEATURES)
    async with asgi_client(app) as client:
        history = await _history(client)
        health = await client.get("/healthz")
        sites = await client.get("/api/v1/sites")
    assert history.status_code == 503
    assert history.json()["error"]["code"] == "database_unavailable"
    assert "unreachable" in history.json()["error"]["message"]
    assert health.status_code == 503
    assert health.json()["components"]["database"]["ok"] is False
    assert sites.status_code == 200  # served from config: unaffected by the outage


async def test_health_metrics_and_docs(settings: Settings, kafka_admin: Any) -> None:
    await kafka_admin.create_topics([settings.kafka_topic(KafkaTopic.OCCUPANCY_LIVE)], 2)
    app = create_app(settings)
    async with asgi_client(app) as client:
        await until(lambda: app.state.live.running, "the live consumer to be assigned")
        health = await client.get("/healthz")
        await _history(client)
        await _history(client, site="nowhere")
        await client.get("/no/such/path")
        metrics = await client.get("/metrics")
        openapi = await client.get("/openapi.json")
        docs = await client.get("/docs")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"
    assert set(health.json()["components"]) == {"database", "kafka_live_consumer", "device_configs"}
    text = metrics.text
    route = "/api/v1/sites/{site}/occupancy"
    assert f'tp_api_requests_total{{method="GET",route="{route}",status="200"}} 1.0' in text
    assert f'tp_api_requests_total{{method="GET",route="{route}",status="404"}} 1.0' in text
    assert 'route="<unmatched>",status="404"' in text
    assert "tp_api_sse_clients 0.0" in text
    assert "tp_api_live_messages_fanned_out_total" in text
    paths = openapi.json()["paths"]
    assert {"/api/v1/sites", route, "/api/v1/live", "/healthz"} <= set(paths)
    assert paths[route]["get"]["description"]
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_full_app_starts_while_database_down(settings: Settings) -> None:
    app = create_app(_database_down(settings), ApiTuning(db_timeout_s=1.0))
    async with asgi_client(app) as client:
        sites = await client.get("/api/v1/sites")
    assert sites.status_code == 200


async def test_kafka_down_live_gives_503_json(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:1"}))
    async with asgi_client(app) as client:
        await until(lambda: app.state.live.last_error is not None, "the consumer to fail")
        live = await client.get("/api/v1/live")
        health = await client.get("/healthz")
    assert live.status_code == 503
    assert live.json()["error"]["code"] == "live_unavailable"
    assert health.status_code == 503
    kafka = health.json()["components"]["kafka_live_consumer"]
    assert kafka["ok"] is False and "Kafka" in kafka["detail"]
    assert health.json()["components"]["database"]["ok"] is True
