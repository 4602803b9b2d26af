"""The simulated Meraki network (`tourpulse simulate controller`): contract and refusals."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from edge.controller_sim.meraki import MerakiSimulator, random_client_mac

SIM = "http://sim.test"


def _client(sim: MerakiSimulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app()), base_url=SIM)


def test_random_macs_are_unicast_and_locally_administered() -> None:
    for _ in range(200):
        first = int(random_client_mac()[:2], 16)
        assert first & 0x02 and not first & 0x01


async def test_join_redirects_to_the_splash_with_meraki_parameters_and_grant_opens() -> None:
    sim = MerakiSimulator(SIM, "http://portal.test", frozenset({"saigon-zoo"}))
    async with _client(sim) as client:
        r = await client.get("/connect/saigon-zoo", params={"lang": "vi"})
        assert r.status_code == 302
        splash = urlsplit(r.headers["location"])
        assert (
            f"{splash.scheme}://{splash.netloc}{splash.path}"
            == "http://portal.test/portal/saigon-zoo"
        )
        q = {k: v[0] for k, v in parse_qs(splash.query).items()}
        assert set(q) == {
            "base_grant_url",
            "user_continue_url",
            "node_mac",
            "client_ip",
            "client_mac",
            "lang",
        }
        assert q["base_grant_url"].startswith(f"{SIM}/splash/") and q["lang"] == "vi"
        grant_path = urlsplit(q["base_grant_url"]).path
        welcome = "http://portal.test/portal/saigon-zoo/welcome"
        r = await client.get(grant_path, params={"continue_url": welcome, "duration": "3600"})
        assert r.status_code == 302 and r.headers["location"] == welcome
        assert "online" in r.text
        assert [(g.site, g.client_mac, g.duration) for g in sim.grants] == [
            ("saigon-zoo", q["client_mac"], "3600")
        ]
        health = (await client.get("/healthz")).json()
        metrics = (await client.get("/metrics")).text
    assert health["grants"] == 1 and "tp_controller_sim_grants_total" in metrics


async def test_bad_requests_are_refused_and_nothing_is_granted() -> None:
    sim = MerakiSimulator(SIM, "http://portal.test", frozenset({"saigon-zoo"}))
    async with _client(sim) as client:
        assert (await client.get("/connect/atlantis")).status_code == 404
        assert (await client.get("/connect/saigon-zoo", params={"mac": "nope"})).status_code == 400
        r = await client.get("/connect/saigon-zoo", params={"mac": "02:11:22:33:44:55"})
        grant = urlsplit(parse_qs(urlsplit(r.headers["location"]).query)["base_grant_url"][0]).path
        ok = {"continue_url": "http://portal.test/w", "duration": "60"}
        assert (await client.get("/splash/forged/grant", params=ok)).status_code == 403
        for bad in ({**ok, "continue_url": "javascript:alert(1)"}, {**ok, "duration": "-1"}, {}):
            assert (await client.get(grant, params=bad)).status_code == 403
    assert sim.grants == []
