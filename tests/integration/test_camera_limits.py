"""Abuse limits on the public camera endpoints, at the HTTP level (no camera needed) and on
the limit objects with a fake clock."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from api.cameras import router as cameras
from api.cameras.lease import PtzLeases
from api.cameras.limits import PeerCaps, RateLimit, SnapshotCache
from api.cameras.tickets import TicketIssuer
from api.errors import ApiError, install_error_handlers
from core.settings import DEVICE_CONFIG_DIR, Settings
from device_configs.loader import load_device_configs
from tests.support.net import free_port

CAM = "/api/v1/cameras/cu-chi-tunnels-ben-dinh-cam1"


@pytest.fixture
async def http(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("TP_CAMERA_OPERATOR_KEY", "s3cret")
    app = FastAPI(lifespan=cameras.lifespan)
    app.state.settings = Settings(mqtt_port=free_port())
    app.state.device_configs = load_device_configs(DEVICE_CONFIG_DIR)
    install_error_handlers(app)
    app.include_router(cameras.router)
    transport = httpx.ASGITransport(app=app)
    async with (
        cameras.lifespan(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        yield client


async def offer_headers(http: httpx.AsyncClient) -> dict[str, str]:
    ticket = (await http.post(f"{CAM}/ticket")).json()["ticket"]
    return {"content-type": "application/sdp", "authorization": f"Bearer {ticket}"}


async def test_whep_offer_needs_a_fresh_ticket_for_that_camera(http: httpx.AsyncClient) -> None:
    page = await http.get("/tours/cu-chi-tunnels-ben-dinh-cam1")
    ticket = re.search(r'let ticket = "([^"]+)"', page.text)
    assert ticket is not None
    sdp = {"content-type": "application/sdp"}
    for auth in (None, "Bearer forged.abc", "Bearer 1.abc"):
        headers = sdp | ({"authorization": auth} if auth else {})
        r = await http.post(f"{CAM}/whep", content=b"v=0", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "ticket_required"
    ok = sdp | {"authorization": f"Bearer {ticket.group(1)}"}
    r = await http.post(f"{CAM}/whep", content=b"v=0", headers=ok)
    assert r.status_code == 400  # past the ticket check: the offer itself is bad
    other = "/api/v1/cameras/ben-tre-coconut-village-cam1"
    r = await http.post(f"{other}/whep", content=b"v=0", headers=ok)
    assert r.status_code in (401, 404)


def test_tickets_expire_and_are_bound_to_the_camera() -> None:
    now = [1000.0]
    issuer = TicketIssuer(secret=b"k", ttl=120, clock=lambda: now[0])
    ticket = issuer.issue("cam1")
    assert issuer.valid("cam1", ticket) and not issuer.valid("cam2", ticket)
    assert not TicketIssuer(secret=b"other").valid("cam1", ticket)
    now[0] = 1121.0
    assert not issuer.valid("cam1", ticket)


async def test_operator_key_wrong_or_non_ascii_is_401_and_right_one_overrides(
    http: httpx.AsyncClient,
) -> None:
    viewer = await http.post(f"{CAM}/ptz/lease", json={"viewer": "alice"})
    assert viewer.status_code == 200 and viewer.json()["operator"] is False
    for key in ("wrong", "khóa-bí-mật"):
        r = await http.post(
            f"{CAM}/ptz/lease", json={"viewer": "op"}, headers={"X-Operator-Key": key.encode()}
        )
        assert r.status_code == 401 and r.json()["error"]["code"] == "bad_operator_key"
    r = await http.post(
        f"{CAM}/ptz/lease", json={"viewer": "op"}, headers={"X-Operator-Key": "s3cret"}
    )
    assert r.status_code == 200 and r.json()["operator"] is True


async def test_tour_page_cannot_be_framed(http: httpx.AsyncClient) -> None:
    page = await http.get("/tours/cu-chi-tunnels-ben-dinh-cam1")
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


async def test_offer_body_is_cut_off_while_streaming(http: httpx.AsyncClient) -> None:
    async def endless() -> AsyncIterator[bytes]:
        yield b"v=0\r\n"
        for _ in range(100):  # 6.4 MB chunked, no Content-Length
            yield b"a" * 65536

    r = await http.post(f"{CAM}/whep", content=endless(), headers=await offer_headers(http))
    assert r.status_code == 413 and r.json()["error"]["code"] == "offer_too_large"


async def test_whep_offers_are_rate_limited_per_ip(http: httpx.AsyncClient) -> None:
    codes = [
        (
            await http.post(f"{CAM}/whep", content=b"hello", headers=await offer_headers(http))
        ).status_code
        for _ in range(8)
    ]
    assert codes[:5] == [400] * 5 and codes[-1] == 429, codes


def test_peer_caps_per_ip_and_per_camera_forget_closed_sessions() -> None:
    caps = PeerCaps(per_camera=5, per_ip=2)
    caps.owners = {"a": "1.1.1.1", "b": "1.1.1.1", "c": "2.2.2.2"}
    with pytest.raises(ApiError) as exc:
        caps.check("1.1.1.1", live={"a", "b", "c"})
    assert exc.value.status == 429
    caps.check("1.1.1.1", live={"a", "c"})  # b closed: room again
    caps.owners.update({"d": "3.3.3.3", "e": "4.4.4.4", "f": "5.5.5.5"})
    with pytest.raises(ApiError) as exc:
        caps.check("6.6.6.6", live=set(caps.owners))
    assert exc.value.status == 503


def test_rate_limit_refills_over_time() -> None:
    now = [0.0]
    limit = RateLimit(per_s=1.0, burst=2, clock=lambda: now[0])
    assert [limit.allow("ip") for _ in range(3)] == [True, True, False]
    assert limit.allow("other")
    now[0] = 1.0
    assert limit.allow("ip") and not limit.allow("ip")


async def test_snapshot_burst_costs_one_detection_until_the_cache_expires() -> None:
    now = [0.0]
    cache = SnapshotCache(ttl=3.0, clock=lambda: now[0])
    calls = 0

    async def make() -> bytes:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return b"jpeg%d" % calls

    got = await asyncio.gather(*(cache.get(make) for _ in range(10)))
    assert set(got) == {b"jpeg1"} and calls == 1
    now[0] = 3.5
    assert await cache.get(make) == b"jpeg2"


async def test_lease_ids_are_server_issued_and_renewal_needs_the_token(
    http: httpx.AsyncClient,
) -> None:
    first = await http.post(f"{CAM}/ptz/lease", json={"viewer": "alice"})
    holder = first.json()
    assert first.status_code == 200 and holder["viewer"] != "alice"  # the server's id
    # knowing (or guessing) the holder's id gets no token
    again = await http.post(f"{CAM}/ptz/lease", json={"viewer": holder["viewer"]})
    assert again.status_code == 409 and holder["token"] not in again.text
    renewed = await http.post(f"{CAM}/ptz/lease", json={}, headers={"X-PTZ-Lease": holder["token"]})
    assert renewed.status_code == 200 and renewed.json()["token"] == holder["token"]
    bad = await http.post(f"{CAM}/ptz/lease", json={}, headers={"X-PTZ-Lease": "forged"})
    assert bad.status_code == 409 and bad.json()["error"]["code"] == "lease_lost"
    queued = await http.post(f"{CAM}/ptz/lease", json={})
    assert queued.status_code == 202 and queued.json()["position"] == 1
    kept = await http.post(f"{CAM}/ptz/lease", json={"viewer": queued.json()["viewer"]})
    assert kept.status_code == 202 and kept.json()["position"] == 1  # same place, same id


def test_lease_hold_is_capped_and_queue_is_bounded() -> None:
    now = [0.0]
    leases = PtzLeases(ttl=60, max_hold=100, max_queue=2, clock=lambda: now[0])
    lease = leases.request("a").lease
    assert lease is not None
    for t in (50.0, 90.0):
        now[0] = t
        assert leases.renew(lease.token) is lease
    assert lease.expires == 100.0  # renewals stop at the maximum hold
    assert leases.request("b").position == 1 and leases.request("c").position == 2
    assert leases.request("d").position == -1  # full
    now[0] = 100.0
    assert leases.check(lease.token) is None
