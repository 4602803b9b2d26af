"""Privacy masks follow the PTZ head: the position comes from the camera over ONVIF
(GetStatus, the simulator as the real peer), and a mask drawn at one preset is filled where
that part of the scene appears at another position, including in the middle of a move."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from core.onvif_client import OnvifSession
from device_configs.camera import Preset
from edge.camera.anonymiser import FrameAnonymiser, PtzPosition, reproject
from edge.camera_sim.server import CameraSim
from tests.support.camera_fixtures import PASSWORD, PRESETS, USER, require_pets

W, H = 640, 480
#: the "entrance" preset of the simulator (pan -0.8, tilt 0.3, zoom 0.5), a mask in its middle
ENTRANCE = Preset.model_validate(
    {
        "name": "entrance",
        "pan": -0.8,
        "tilt": 0.3,
        "zoom": 0.5,
        "privacy_masks": [[[0.4, 0.4], [0.6, 0.4], [0.6, 0.6], [0.4, 0.6]]],
    }
)


@pytest.fixture
async def session() -> AsyncIterator[OnvifSession]:
    sim = CameraSim(require_pets(), username=USER, password=PASSWORD, presets=PRESETS)
    await sim.start()
    s = OnvifSession("127.0.0.1", sim.onvif_port, USER, PASSWORD)
    try:
        await s.connect()
        yield s
    finally:
        await s.close()
        await sim.close()


def _masked_at(pos: PtzPosition) -> np.ndarray:
    anon = FrameAnonymiser([ENTRANCE], W, H)
    anon.set_position(pos)
    anon.set_position(pos)
    frame = np.full((H, W, 3), 200, np.uint8)
    anon.process(frame, [])
    return frame.max(axis=2) == 0


async def test_masks_follow_the_position_the_camera_reports(session: OnvifSession) -> None:
    assert session.info is not None
    await session.goto_preset(session.info.presets["entrance"])
    at_preset = PtzPosition(*await session.position())
    assert at_preset == pytest.approx(PtzPosition(-0.8, 0.3, 0.5))
    black = _masked_at(at_preset)
    assert black[H // 2, W // 2] and not black[10, 10]  # the mask is where it was drawn

    await session.move(1.0, 0.0, 0.0, 0.6)  # pan right, mid-move reading
    await asyncio.sleep(0.3)
    moving = PtzPosition(*await session.position())
    assert moving.pan > at_preset.pan + 0.05
    black = _masked_at(moving)
    (x0, y0), (x1, y1) = reproject([(0.4, 0.4), (0.6, 0.6)], PtzPosition.of(ENTRANCE), moving)
    cx, cy = round((x0 + x1) / 2 * W), round((y0 + y1) / 2 * H)
    assert black[cy, cx], "the scene point under the mask is not covered after the pan"
    assert cx < W // 2 - 20  # panning right moved the masked scene point left
    assert not black[H // 2, W - 40]
