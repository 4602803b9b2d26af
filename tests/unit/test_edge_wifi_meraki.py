"""Meraki Scanning API v3 receiver: presence events, and sessions derived from sightings.

The receiver runs for real (aiohttp on loopback, the agent built from its YAML config);
events go to an in-memory sink, the MQTT path is covered by the privacy and e2e tests.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from edge.wifi.agent import WifiAgent
from edge.wifi.config import load_config
from edge.wifi.meraki import MerakiScanningAdapter
from schemas.presence import WifiPresenceV1
from schemas.wifi import WifiSessionInterimV1, WifiSessionStartV1, WifiSessionStopV1
from tests.support.edge_wifi_support import TEST_APS, ListSink, write_agent_config

AP1, AP2 = (bssid for bssid, _ in TEST_APS.values())
T0 = datetime(2025, 6, 1, 5, 0, tzinfo=UTC)
ASSOCIATED, PROBING = "da:a1:19:00:00:01", "00:1a:2b:3c:4d:5e"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _obs(mac: str, ap: str, t: datetime, ssid: str | None = "HCMC Free WiFi") -> dict[str, object]:
    return {
        "clientMac": mac,
        "ssid": ssid,
        "latestRecord": {"time": t.isoformat().replace("+00:00", "Z"), "nearestApMac": ap,
                         "nearestApRssi": -60},
    }  # fmt: skip


async def _agent(
    tmp_path: Path, sessions: str
) -> tuple[WifiAgent, MerakiScanningAdapter, ListSink]:
    block = (
        "meraki:\n  enabled: true\n  host: 127.0.0.1\n  port: 0\n  validator: v4l1d\n"
        f"  secret: secret:meraki-btm\n  sessions: {sessions}\n  session_timeout_s: 120\n"
    )
    sink = ListSink()
    agent = WifiAgent(
        load_config(write_agent_config(tmp_path, 1, radius="radius:\n  enabled: false\n",
                                       meraki=block)),
        sink,
    )  # fmt: skip
    await agent.start()
    (adapter,) = agent.adapters
    assert isinstance(adapter, MerakiScanningAdapter)
    return agent, adapter, sink


async def _post(adapter: MerakiScanningAdapter, observations: list[dict[str, object]]) -> int:
    body = {"version": "3.0", "secret": "meraki-shared", "type": "WiFi",
            "data": {"networkId": "N_1", "observations": observations}}  # fmt: skip
    url = f"http://127.0.0.1:{adapter.port}{adapter.path}"
    async with aiohttp.ClientSession() as http, http.post(url, data=json.dumps(body)) as resp:
        assert resp.status == 200, await resp.text()
        return int((await resp.json())["accepted"])


def _sessions(sink: ListSink) -> list[object]:
    return [e for e in sink.events if not isinstance(e, WifiPresenceV1)]


async def test_sightings_become_sessions_and_absence_stops_them(tmp_path: Path) -> None:
    agent, adapter, sink = await _agent(tmp_path, "associated")
    clock = Clock()
    adapter.sessions.clock = clock
    try:
        first = [_obs(ASSOCIATED, AP1, T0), _obs(PROBING, AP1, T0, ssid=None),
                 _obs(ASSOCIATED, "02:00:5e:99:99:99", T0)]  # fmt: skip
        assert await _post(adapter, first) == 2
        assert adapter.stats.drops == {"unknown_ap": 1}
        presence = [e for e in sink.events if isinstance(e, WifiPresenceV1)]
        assert len(presence) == 2
        (start,) = _sessions(sink)  # the probing phone is footfall only
        assert isinstance(start, WifiSessionStartV1)
        assert start.data.ap == "ben-thanh-market-ap01" and start.event_time == T0
        assert start.data.client_id == presence[0].data.client_id and start.data.randomized_mac

        clock.now += 60
        await _post(adapter, first[:1])  # Meraki repeats the latest record: no new session event
        assert len(_sessions(sink)) == 1
        await _post(adapter, [_obs(ASSOCIATED, AP2, T0 + timedelta(minutes=1))])
        interim = _sessions(sink)[-1]
        assert isinstance(interim, WifiSessionInterimV1)
        assert interim.data.ap == "ben-thanh-market-ap02" and interim.data.session_seconds == 60
        assert interim.data.session_id == start.data.session_id

        clock.now += 119
        assert adapter.sessions.expire() == []
        clock.now += 2
        (stop,) = adapter.sessions.expire()
        assert isinstance(stop, WifiSessionStopV1) and stop.data.session_id == start.data.session_id
        assert stop.event_time == T0 + timedelta(minutes=1)  # when last seen, not when noticed
        assert stop.data.terminate_cause == "Idle-Timeout" and len(adapter.sessions) == 0
        ids = [e.id for e in _sessions(sink)] + [stop.id]  # type: ignore[attr-defined]
        assert len(set(ids)) == len(ids)
    finally:
        await agent.stop()


async def test_all_mode_counts_probing_clients_and_stop_closes_open_sessions(
    tmp_path: Path,
) -> None:
    agent, adapter, sink = await _agent(tmp_path, "all")
    try:
        assert await _post(adapter, [_obs(ASSOCIATED, AP1, T0), _obs(PROBING, AP2, T0, None)]) == 2
        starts = _sessions(sink)
        assert [type(e) for e in starts] == [WifiSessionStartV1, WifiSessionStartV1]
        assert starts[1].data.ssid is None and not starts[1].data.randomized_mac  # type: ignore[attr-defined]
    finally:
        await agent.stop()
    stops = _sessions(sink)[2:]
    assert [type(e) for e in stops] == [WifiSessionStopV1, WifiSessionStopV1]
    assert {e.data.session_id for e in stops} == {e.data.session_id for e in starts}  # type: ignore[attr-defined]


async def test_none_mode_emits_presence_only(tmp_path: Path) -> None:
    agent, adapter, sink = await _agent(tmp_path, "none")
    try:
        assert await _post(adapter, [_obs(ASSOCIATED, AP1, T0)]) == 1
        assert [type(e) for e in sink.events] == [WifiPresenceV1]
    finally:
        await agent.stop()


async def test_one_infinite_rssi_is_skipped_not_a_5xx_and_deep_json_is_a_400(
    tmp_path: Path,
) -> None:
    """Measured: ``nearestApRssi: 1e999`` made the whole POST a 500 (every re-post too), the
    valid observations were lost and their in-memory session later published a stop
    without a start; JSON nested 100,000 deep was a 500 (RecursionError)."""
    agent, adapter, sink = await _agent(tmp_path, "associated")
    try:
        infinite = _obs(PROBING, AP2, T0)
        infinite["latestRecord"]["nearestApRssi"] = float("inf")  # type: ignore[index]
        body = json.dumps([_obs(ASSOCIATED, AP1, T0), infinite]).replace("Infinity", "1e999")
        assert await _post_raw(adapter, body) == (200, {"accepted": 1, "received": 2})
        assert adapter.stats.drops == {"invalid_observation": 1}
        assert [type(e) for e in _sessions(sink)] == [WifiSessionStartV1]
        deep = '{"version": "3.0", "data": ' + "[" * 100_000 + "]" * 100_000 + "}"
        status, reply = await _post_raw(adapter, deep, wrap=False)
        assert (status, reply) == (400, {"error": "too_deep"})
    finally:
        await agent.stop()


async def _post_raw(
    adapter: MerakiScanningAdapter, observations: str, wrap: bool = True
) -> tuple[int, object]:
    body = observations
    if wrap:
        body = ('{"version": "3.0", "secret": "meraki-shared", "type": "WiFi", '
                f'"data": {{"networkId": "N_1", "observations": {observations}}}}}')  # fmt: skip
    url = f"http://127.0.0.1:{adapter.port}{adapter.path}"
    async with aiohttp.ClientSession() as http, http.post(url, data=body) as resp:
        return resp.status, await resp.json()
