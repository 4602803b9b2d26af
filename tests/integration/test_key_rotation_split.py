"""A Wi-Fi session spanning the daily key rotation is split there, on the timer.

Measured before the fix: the agent rotated its key only when the next packet needed it and
did not end open sessions, so the old session (old pseudonym) stayed "present" until the
worker's timeout next to the new one, and nothing said why the client id changed. Now the
agent's timer stops every open session under the old pseudonym at the rotation instant and
starts it under the new one (reason ``Key-Rotation``); the worker stores two sessions.

The rotation instant is the agent's configured ``key_rotate_at`` set two seconds ahead of
the wall clock (the agent, radclient and the worker all see the same real time); the unit
test ``tests/unit/test_session_split.py`` drives the same split with a fake clock.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from edge.wifi.agent import WifiAgent
from edge.wifi.config import load_config
from edge.wifi.radius import RadiusAccountingAdapter
from edge.wifi.sessions import KEY_ROTATION
from schemas.wifi import WifiSessionInterimV1, WifiSessionStartV1, WifiSessionStopV1
from stream.wifi.sink import OccupancySink
from tests.support.edge_wifi_support import (
    RADIUS_SECRET,
    ListSink,
    radclient,
    write_agent_config,
)
from tests.support.net import wait_until

pytestmark = pytest.mark.integration

LEAD = timedelta(seconds=2)


def _packet(status: str, **attrs: str) -> str:
    fields = {
        "Acct-Status-Type": status,
        "Acct-Session-Id": '"night-0001"',
        "Calling-Station-Id": '"3C-22-FB-00-00-01"',
        "Called-Station-Id": '"02-00-5E-10-00-02:HCMC Free WiFi"',
        "NAS-Identifier": '"controller-1"',
        "NAS-Port-Type": "Wireless-802.11",
        **attrs,
    }
    return ", ".join(f"{k} = {v}" for k, v in fields.items())


async def test_session_spanning_rotation_is_two_sessions_in_the_worker(
    tmp_path: Path, database_url: str
) -> None:
    rotate = (datetime.now(UTC) + LEAD).replace(microsecond=0) + timedelta(seconds=1)
    if rotate.date() != datetime.now(UTC).date():
        pytest.skip("the rotation instant would fall after midnight UTC")  # seconds a day
    block = (
        "radius:\n  host: 127.0.0.1\n  port: 0\n"
        f"key_rotate_at: '{rotate.time().isoformat()}'\ntimezone: UTC\n"
    )
    sink = ListSink()
    agent = WifiAgent(load_config(write_agent_config(tmp_path, 1, radius=block)), sink)
    await agent.start()
    radius = agent.adapters[0]
    assert isinstance(radius, RadiusAccountingAdapter)
    try:
        out = await asyncio.to_thread(radclient, radius.port, [_packet("Start")], RADIUS_SECRET)
        assert "Received Accounting-Response" in out, out
        # Nothing is sent meanwhile: only the rotation timer can add the stop and the start.
        await asyncio.to_thread(wait_until, lambda: len(sink.events) >= 3, 10, "rotation split")
        later = [
            _packet("Interim-Update", **{"Acct-Session-Time": "30"}),
            _packet("Stop", **{"Acct-Session-Time": "40", "Acct-Terminate-Cause": "User-Request"}),
        ]
        out = await asyncio.to_thread(radclient, radius.port, later, RADIUS_SECRET, "-p", "1")
        assert out.count("Received Accounting-Response") == 2, out
    finally:
        await agent.stop()

    first, stop_old, start_new, interim, stop_new = sink.events
    assert isinstance(first, WifiSessionStartV1) and isinstance(stop_old, WifiSessionStopV1)
    assert isinstance(start_new, WifiSessionStartV1) and isinstance(interim, WifiSessionInterimV1)
    assert isinstance(stop_new, WifiSessionStopV1)
    old, new = first.data, start_new.data
    # The stop is under the old pseudonym, the start under the new one, both with the reason.
    assert stop_old.data.client_id == old.client_id
    assert stop_old.data.session_id == old.session_id
    assert stop_old.data.terminate_cause == KEY_ROTATION and new.start_cause == KEY_ROTATION
    assert new.client_id != old.client_id and new.session_id != old.session_id
    assert stop_old.event_time == start_new.event_time == rotate
    # The NAS's next reports land in the new session, not in a third one.
    assert interim.data.session_id == stop_new.data.session_id == new.session_id
    assert interim.data.client_id == new.client_id

    conn = await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, options="-c timezone=UTC"
    )
    try:
        sink_db = OccupancySink(conn, timedelta(minutes=5))
        await sink_db.write(sink.events)  # type: ignore[arg-type]
        cur = await conn.execute(
            "SELECT session_id, client_id, started_at, ended_at FROM wifi_sessions "
            "ORDER BY started_at"
        )
        rows = await cur.fetchall()
    finally:
        await conn.close()
    assert [(r[0], r[1]) for r in rows] == [
        (old.session_id, old.client_id),
        (new.session_id, new.client_id),
    ]
    assert rows[0][3] == rotate  # the old session ended at the rotation
    assert rows[1][2] == rotate and rows[1][3] is not None  # the new one began there
