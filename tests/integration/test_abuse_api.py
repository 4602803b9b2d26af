"""Abuse limits on the real app (uvicorn, PostgreSQL, Kafka): login throttling, one-time
stream tickets instead of JWTs in URLs, revoked sessions ending live streams, stream caps."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import websockets
from psycopg_pool import AsyncConnectionPool

from api.app import create_app
from api.config import ApiTuning
from api.ioc.users import Role, UserStore
from core.settings import Settings
from schemas.topics import KafkaTopic
from tests.support.api_support import sse_events, uvicorn_server
from tests.support.net import until

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


async def _setup(settings: Settings, database_url: str, kafka_admin: Any) -> None:
    topics = [
        settings.kafka_topic(t)
        for t in (
            KafkaTopic.OCCUPANCY_LIVE,
            KafkaTopic.OCCUPANCY_FUSED,
            KafkaTopic.FLOWS_HOURLY,
            KafkaTopic.ALERT_CHANGES,
        )
    ]
    await kafka_admin.create_topics(topics, partitions=1)
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as pool:
        await UserStore(pool).create("olga", PASSWORD, Role.OPERATOR)


async def _token(client: httpx.AsyncClient) -> str:
    r = await client.post("/api/v1/auth/token", data={"username": "olga", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def test_login_is_throttled_per_address_and_backed_off_per_user(
    settings: Settings, database_url: str, kafka_admin: Any
) -> None:
    await _setup(settings, database_url, kafka_admin)
    app = create_app(settings)
    async with uvicorn_server(app) as base, httpx.AsyncClient(base_url=base, timeout=60) as client:
        await until(lambda: hasattr(app.state, "ioc"), "the IOC feature")
        # The bucket's clock stands still while we guess: each Argon2 check takes a
        # machine-dependent time, which would otherwise refill tokens between attempts.
        throttle = app.state.ioc.throttle
        real_clock, frozen = throttle.clock, throttle.clock()
        throttle.clock = lambda: frozen
        statuses = []
        for i in range(12):
            r = await client.post(
                "/api/v1/auth/token", data={"username": f"guess{i}", "password": "123456"}
            )
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["retry-after"]) >= 1
                assert r.json()["error"]["code"] == "too_many_attempts"
        # The burst is answered (401), then the address is held to the sustained rate.
        assert statuses == [401] * 5 + [429] * 7, statuses
        throttle.clock = real_clock
        # The same user from elsewhere: after 3 free failures, a back-off applies to
        # everyone trying that user, even with the right password.
        app.state.ioc.throttle._ips.clear()
        for _ in range(4):
            app.state.ioc.throttle._ips.clear()
            await client.post("/api/v1/auth/token", data={"username": "olga", "password": "x"})
        app.state.ioc.throttle._ips.clear()
        blocked = await client.post(
            "/api/v1/auth/token", data={"username": "olga", "password": PASSWORD}
        )
        assert blocked.status_code == 429
        await asyncio.sleep(1.1)
        assert (await _token(client)).count(".") == 2
        metrics = (await client.get("/metrics")).text
        assert 'tp_api_ioc_logins_total{outcome="throttled"}' in metrics
        assert app.state.ioc.users.gate.peak <= app.state.ioc.users.gate.slots


async def test_streams_use_one_time_tickets_and_end_when_the_session_is_revoked(
    settings: Settings, database_url: str, kafka_admin: Any
) -> None:
    await _setup(settings, database_url, kafka_admin)
    app = create_app(settings, ApiTuning(stream_reauth_s=0.5))
    async with uvicorn_server(app) as base, httpx.AsyncClient(base_url=base, timeout=60) as client:
        token = await _token(client)
        bearer = {"Authorization": f"Bearer {token}"}
        await until(lambda: app.state.ioc.feed.hub.ready, "the IOC feed")
        # The JWT is no longer accepted in the URL.
        in_url = await client.get("/api/v1/ioc/live", params={"access_token": token})
        assert in_url.status_code == 401
        no_auth = await client.post("/api/v1/auth/stream-ticket")
        assert no_auth.status_code == 401
        ticket = (await client.post("/api/v1/auth/stream-ticket", headers=bearer)).json()
        assert ticket["expires_in"] == 60 and token not in ticket["ticket"]
        async with client.stream(
            "GET", "/api/v1/ioc/live", params={"ticket": ticket["ticket"]}
        ) as stream:
            assert stream.status_code == 200
            events = sse_events(stream)
            assert (await anext(events)).retry is not None
            # Spent: the same ticket cannot open a second stream.
            again = await client.get("/api/v1/ioc/live", params={"ticket": ticket["ticket"]})
            assert again.status_code == 401
            assert "already used" in again.json()["error"]["message"]
            async with AsyncConnectionPool(database_url, min_size=1, max_size=1) as pool:
                await UserStore(pool).set_role("olga", Role.VIEWER)
            revoked_at = time.monotonic()
            async with asyncio.timeout(15):
                async for _ in events:
                    pass
            # The stream ended by itself within a few re-check periods.
            assert time.monotonic() - revoked_at < 12
        assert app.state.ioc.metrics.streams_revoked._value.get() == 1

        # WebSocket: same ticket rules, and a revoked session closes it with 4401.
        token = await _token(client)
        ws_ticket = (
            await client.post(
                "/api/v1/auth/stream-ticket", headers={"Authorization": f"Bearer {token}"}
            )
        ).json()["ticket"]
        ws_url = base.replace("http", "ws") + f"/api/v1/ioc/ws?ticket={ws_ticket}"
        async with websockets.connect(ws_url) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert first["event"] == "freshness"
            async with AsyncConnectionPool(database_url, min_size=1, max_size=1) as pool:
                await UserStore(pool).set_disabled("olga", True)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(15):
                    while True:
                        await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        async with websockets.connect(ws_url) as ws:  # spent ticket
            with pytest.raises(websockets.ConnectionClosed) as refused:
                await asyncio.wait_for(ws.recv(), 10)
            assert refused.value.rcvd is not None and refused.value.rcvd.code == 4401


async def test_public_live_streams_are_capped_per_address(settings: Settings) -> None:
    app = create_app(
        settings,
        ApiTuning(streams_max_per_ip=2, streams_max=3),
        features=("api.routes.live", "api.routes.health"),
    )
    async with uvicorn_server(app) as base, httpx.AsyncClient(base_url=base, timeout=60) as client:
        await until(lambda: app.state.live.hub.ready, "the live feed")
        async with (
            client.stream("GET", "/api/v1/live") as one,
            client.stream("GET", "/api/v1/live") as two,
        ):
            assert one.status_code == two.status_code == 200
            third = await client.get("/api/v1/live")
            assert third.status_code == 429
            assert third.json()["error"]["code"] == "too_many_streams"
        # Closed streams free their slots.
        await until(lambda: app.state.streams.total == 0, "slots released", within=10)
        async with client.stream("GET", "/api/v1/live") as again:
            assert again.status_code == 200
        metrics = (await client.get("/metrics")).text
        assert 'tp_api_streams_refused_total{reason="per_ip"} 1.0' in metrics
