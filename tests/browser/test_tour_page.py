"""A real browser on the tour page: live video decodes, narration shows, the viewer takes the
PTZ lease and pans -- through API -> MQTT (private Mosquitto) -> camera agent -> ONVIF -- and
turns the camera's sound on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.camera_fixtures import require_pets
from tests.support.camera_netns import run_scenario

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="apt-get install chromium")
async def test_tour_page_plays_and_viewer_moves_the_camera() -> None:
    require_pets()
    result = await run_scenario("browser")
    frames = result["frames_decoded"]
    assert isinstance(frames, list) and frames[-1] > frames[0] and frames[-1] >= 10, frames
    assert result["narration"]  # the current step's Vietnamese narration
    assert result["lease_text"] == "you control the camera"
    assert float(result["pan_after"]) > float(result["pan_before"]) + 0.05
    sound = result["sound"]  # the mute control turned the camera's microphone on
    assert isinstance(sound, dict) and sound["muted"] is False and sound["pressed"] == "true"
    assert sound["samples"] > 8000 and sound["energy"] > 0, sound
