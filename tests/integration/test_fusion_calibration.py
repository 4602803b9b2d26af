"""Calibration persistence against real PostgreSQL: a restarted service keeps the ratio."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from core.settings import DEVICE_CONFIG_DIR
from device_configs import load_device_configs
from stream.fusion.model import FusionParams, Reading
from stream.fusion.service import FusionService

pytestmark = pytest.mark.integration
SITE = "ben-thanh-market"


def _service(clock: list[float]) -> FusionService:
    return FusionService(
        load_device_configs(Path(DEVICE_CONFIG_DIR)), FusionParams(), clock=lambda: clock[0]
    )


async def test_restart_keeps_calibration_and_rejects_bad_input(database_url: str) -> None:
    clock = [0.0]
    first = _service(clock)
    state = first.sites[SITE]
    for t in range(12):
        clock[0] = float(t)
        state.wifi = Reading(100, clock[0])
        for cam in state.cameras:
            state.camera_people[cam] = Reading(60, clock[0])  # 120 / (100 * 0.5) = 2.4
        first.tick()
    first.on_wifi(b"not json")  # counted, not raised
    first.on_camera(b'{"type": "camera.metadata"}')
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        assert await first.save(conn) == 1
        second = _service(clock)
        assert await second.load(conn) == 1
    cal = second.sites[SITE].calibration
    assert cal is not None and cal.samples == 12 and cal.ratio == pytest.approx(2.4)
    second.sites[SITE].wifi = Reading(10, clock[0])
    (msg,) = [m for m in second.tick() if m.site == SITE]
    assert msg.people_per_client == pytest.approx(2.4) and msg.people == 24.0
    assert msg.degraded  # the restarted service has no fresh camera counts yet
