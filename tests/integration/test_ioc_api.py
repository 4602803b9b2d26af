"""IOC API against the real stack: login, roles, alert queue and actions (published to
Kafka and seen on the live feed), OD suppression, NGSI-LD export, the users CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from api.app import create_app
from api.ioc.users import Role, UserStore
from core.settings import Settings
from schemas.stream_out import AlertChangedV1, FusedOccupancyV1
from schemas.topics import KafkaTopic
from stream.alerts.lifecycle import Severity
from stream.alerts.store import AlertStore
from tests.support.api_support import produce, sse_events, uvicorn_server
from tests.support.net import until

pytestmark = pytest.mark.integration

SITE = "ben-thanh-market"
OTHER = "notre-dame-cathedral"
PASSWORD = "correct horse battery"


async def _topics(settings: Settings, kafka_admin: Any) -> dict[KafkaTopic, str]:
    names = {
        t: settings.kafka_topic(t)
        for t in (
            KafkaTopic.OCCUPANCY_LIVE,
            KafkaTopic.OCCUPANCY_FUSED,
            KafkaTopic.FLOWS_HOURLY,
            KafkaTopic.ALERT_CHANGES,
        )
    }
    await kafka_admin.create_topics(list(names.values()), partitions=2)
    return names


async def _users(database_url: str) -> None:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as pool:
        users = UserStore(pool)
        await users.create("olga", PASSWORD, Role.OPERATOR)
        await users.create("vic", PASSWORD, Role.VIEWER)


async def _login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    r = await client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _fused(site: str, people: float) -> bytes:
    now = datetime.now(UTC)
    return (
        FusedOccupancyV1(
            site=site,
            people=people,
            low=people * 0.8,
            high=people * 1.2,
            capacity=1000,
            as_of=now,
            emitted_at=now,
        )
        .model_dump_json()
        .encode()
    )


async def test_login_roles_and_alert_actions_reach_the_live_feed(
    settings: Settings, database_url: str, kafka_admin: Any
) -> None:
    topics = await _topics(settings, kafka_admin)
    await _users(database_url)
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as pool:
        stored = await AlertStore(pool).raise_alert(
            SITE, SITE, "occupancy.high", Severity.MAJOR, datetime.now(UTC), {"people": 950}
        )
        await AlertStore(pool).raise_alert(
            "ap-1", OTHER, "device.offline", Severity.WARNING, datetime.now(UTC), {}
        )
    app = create_app(settings)
    async with uvicorn_server(app) as base, httpx.AsyncClient(base_url=base, timeout=60) as client:
        # No token, wrong password, unknown user: all 401 JSON, none says which part was wrong.
        assert (await client.get("/api/v1/alerts")).status_code == 401
        for user, pw in (("olga", "wrong password"), ("nobody", PASSWORD)):
            r = await client.post("/api/v1/auth/token", data={"username": user, "password": pw})
            assert r.status_code == 401
            assert r.json()["error"]["message"] == "wrong username or password"
        bad = await client.get("/api/v1/alerts", headers={"Authorization": "Bearer x.y.z"})
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "unauthorized"
        operator, viewer = await _login(client, "olga"), await _login(client, "vic")
        assert (await client.get("/api/v1/auth/me", headers=viewer)).json()["role"] == "viewer"

        listed = (await client.get("/api/v1/alerts", headers=viewer)).json()["alerts"]
        assert [a["type"] for a in listed] == ["occupancy.high", "device.offline"]
        major = await client.get(
            "/api/v1/alerts", params={"severity": "major", "site": SITE}, headers=viewer
        )
        assert [a["id"] for a in major.json()["alerts"]] == [stored.id]
        assert (
            await client.get("/api/v1/alerts", params={"state": "bogus"}, headers=viewer)
        ).status_code == 422

        await until(lambda: app.state.ioc.feed.hub.ready, "the IOC feed")
        async with client.stream("GET", "/api/v1/ioc/live", headers=operator) as stream:
            assert stream.status_code == 200
            events = sse_events(stream)
            first = await anext(events)
            assert first.retry is not None
            fresh = await anext(events)
            assert fresh.event == "freshness" and fresh.id is None

            denied = await client.post(f"/api/v1/alerts/{stored.id}/ack", headers=viewer)
            assert denied.status_code == 403
            acked = await client.post(f"/api/v1/alerts/{stored.id}/ack", headers=operator)
            assert acked.status_code == 200, acked.text
            assert acked.json()["alert"]["state"] == "ACTIVE_ACK"
            assert acked.json()["published"] is True
            again = await client.post(f"/api/v1/alerts/{stored.id}/ack", headers=operator)
            assert again.status_code == 409
            assert again.json()["error"]["code"] == "invalid_transition"
            assigned = await client.post(
                f"/api/v1/alerts/{stored.id}/assign", json={"assignee": "olga"}, headers=operator
            )
            assert assigned.json()["alert"]["assignee"] == "olga"
            unknown = await client.post(
                f"/api/v1/alerts/{stored.id}/assign", json={"assignee": "ghost"}, headers=operator
            )
            assert unknown.status_code == 422
            comment = await client.post(
                f"/api/v1/alerts/{stored.id}/comment", json={"text": ""}, headers=operator
            )
            assert comment.status_code == 422
            await client.post(
                f"/api/v1/alerts/{stored.id}/comment",
                json={"text": "crowd control sent"},
                headers=operator,
            )
            cleared = await client.post(
                f"/api/v1/alerts/{stored.id}/clear", json={"note": "dispersed"}, headers=operator
            )
            assert cleared.json()["alert"]["state"] == "CLEARED_ACK"
            missing = await client.post("/api/v1/alerts/999999/ack", headers=operator)
            assert missing.status_code == 404

            changes: list[dict[str, Any]] = []
            async for event in events:
                if event.event == "alert":
                    changes.append(json.loads(event.data))
                    if len(changes) == 4:
                        break
            assert [(c["action"], c["actor"]) for c in changes] == [
                ("ack", "olga"),
                ("assign", "olga"),
                ("comment", "olga"),
                ("clear", "olga"),
            ]
            assert changes[-1]["alert"]["state"] == "CLEARED_ACK"

        detail = (await client.get(f"/api/v1/alerts/{stored.id}", headers=viewer)).json()
        assert [(h["action"], h["actor"]) for h in detail["history"]] == [
            ("raise", "system"),
            ("ack", "olga"),
            ("assign", "olga"),
            ("comment", "olga"),
            ("clear", "olga"),
        ]
        assert detail["history"][3]["note"] == "crowd control sent"
        published = await kafka_admin.consume_all(topics[KafkaTopic.ALERT_CHANGES], 4)
        assert all(AlertChangedV1.model_validate_json(m.value) for m in published)
        assert {m.key for m in published} == {SITE.encode()}

        # Revocation: a role change invalidates the old token at once.
        async with AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False) as pool:
            await UserStore(pool).set_role("olga", Role.VIEWER)
        revoked = await client.get("/api/v1/auth/me", headers=operator)
        assert revoked.status_code == 401


async def test_od_matrix_suppresses_small_cells_and_ngsi_export(
    settings: Settings, database_url: str, kafka_admin: Any
) -> None:
    topics = await _topics(settings, kafka_admin)
    day = date(2026, 3, 14)
    h9 = datetime(2026, 3, 14, 2, tzinfo=UTC)  # 09:00 in HCMC
    rows = [
        (h9, SITE, OTHER, day, 12, 11),
        (h9, OTHER, SITE, day, 9, 9),  # below k = 10: must never show
        (h9 + timedelta(hours=1), SITE, OTHER, day, 10, 3),
    ]
    with psycopg.connect(database_url) as conn:
        for r in rows:
            conn.execute(
                "INSERT INTO flow_od_hourly (hour, origin, destination, day, clients,"
                " clients_stable) VALUES (%s, %s, %s, %s, %s, %s)",
                r,
            )
        conn.execute(
            "INSERT INTO flow_hourly (site, hour, day, unique_visitors, unique_visitors_stable,"
            " new_visitors, returning_visitors, dwell_sessions, dwell_median_s, dwell_p90_s)"
            " VALUES (%s, %s, %s, 40, 35, 30, 10, 12, 1800.0, 3600.0)",
            (SITE, h9, day),
        )
    await produce(
        settings.kafka_bootstrap, topics[KafkaTopic.OCCUPANCY_FUSED], [_fused(SITE, 420.0)]
    )
    app = create_app(settings)
    async with uvicorn_server(app) as base, httpx.AsyncClient(base_url=base, timeout=60) as client:
        hour = await client.get("/api/v1/flows/od", params={"date": "2026-03-14", "hour": 9})
        assert hour.status_code == 200
        body = hour.json()
        assert body["min_count"] == 10 and body["lower_bound"] is False
        assert [(c["origin"], c["destination"], c["clients"]) for c in body["cells"]] == [
            (SITE, OTHER, 12)
        ]
        assert body["cells"][0]["clients_stable"] == 11
        whole = (await client.get("/api/v1/flows/od", params={"date": "2026-03-14"})).json()
        assert [
            (c["origin"], c["clients"], c["clients_stable"], c["hours"]) for c in whole["cells"]
        ] == [(SITE, 22, None, 2)]
        assert whole["lower_bound"] is True
        assert (await client.get("/api/v1/flows/od", params={"hour": 24})).status_code == 422

        await until(lambda: SITE in app.state.ioc.feed.hub.latest_of("fused"), "the fused update")
        crowd = await client.get("/api/v1/ngsi-ld/CrowdFlowObserved")
        assert crowd.headers["content-type"].startswith("application/ld+json")
        (entity,) = crowd.json()
        assert entity["id"] == f"urn:ngsi-ld:CrowdFlowObserved:hcmc:{SITE}"
        assert entity["type"] == "CrowdFlowObserved"
        assert entity["peopleCount"]["value"] == 420
        assert entity["occupancy"]["value"] == 0.42
        assert entity["congested"]["value"] is False
        assert entity["location"]["value"]["type"] == "Point"
        assert entity["peopleCount"]["observedAt"].endswith("Z")
        assert any("ngsi-ld-core-context" in str(c) for c in entity["@context"])
        presence = (
            await client.get(
                "/api/v1/ngsi-ld/TourismPresenceObserved", params={"date": "2026-03-14"}
            )
        ).json()
        (p,) = presence
        assert p["uniqueVisitors"]["value"] == 40
        assert p["dwellTimeMedian"] == {
            "type": "Property",
            "value": 1800.0,
            "observedAt": "2026-03-14T03:00:00Z",
            "unitCode": "SEC",
        }
        assert p["dateObservedFrom"]["value"] == "2026-03-14T02:00:00Z"
        assert (
            await client.get("/api/v1/ngsi-ld/CrowdFlowObserved", params={"site": "atlantis"})
        ).status_code == 404


def test_users_cli_creates_the_first_admin(database_url: str, tmp_path: Any) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    env.pop("TP_IOC_PASSWORD", None)
    cli = [sys.executable, "-m", "infra.cli", "users"]

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, *args], input=stdin, env=env, capture_output=True, text=True, timeout=120
        )

    empty = run("list")
    assert empty.returncode == 0 and "no users yet" in empty.stdout
    made = run(
        "create",
        "--username",
        "Admin1",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a long enough secret\n",
    )
    assert made.returncode == 0, made.stderr
    assert "created admin1 (admin)" in made.stdout
    dup = run("create", "--username", "admin1", "--password-stdin", stdin="another secret!\n")
    assert dup.returncode == 2 and "already exists" in dup.stderr
    short = run("create", "--username", "bob", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "password must be" in short.stderr
    no_pw = run("create", "--username", "carol")  # stdin is not a terminal, no env
    assert no_pw.returncode == 2 and "no password" in no_pw.stderr
    listed = run("list")
    assert listed.stdout.split() == ["admin1", "admin"]
    with psycopg.connect(database_url) as conn:
        (stored,) = conn.execute("SELECT password_hash FROM ioc_users").fetchone() or ("",)
    assert stored.startswith("$argon2id$") and "a long enough secret" not in stored
