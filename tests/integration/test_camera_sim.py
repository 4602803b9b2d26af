"""The camera simulator against ONVIF clients: the maintained async fork and, for interop,
the legacy onvif-zeep (an independently written client) in its own interpreter."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from onvif import ONVIFCamera
from onvif.exceptions import ONVIFError
from zeep.exceptions import Fault

from edge.camera_sim.server import CameraSim
from tests.support.camera_fixtures import (
    LEGACY_PYTHON,
    PASSWORD,
    PRESETS,
    USER,
    grab_rtsp_frame,
    require_pets,
)


@pytest.fixture
async def sim() -> AsyncIterator[CameraSim]:
    camera = CameraSim(require_pets(), username=USER, password=PASSWORD, presets=PRESETS)
    await camera.start()
    try:
        yield camera
    finally:
        await camera.close()


async def _client(sim: CameraSim, password: str = PASSWORD) -> ONVIFCamera:
    cam = ONVIFCamera("127.0.0.1", sim.onvif_port, USER, password)
    await cam.update_xaddrs()
    return cam


async def test_device_media_and_ptz_over_soap(sim: CameraSim) -> None:
    cam = await _client(sim)
    try:
        info = await (await cam.create_devicemgmt_service()).GetDeviceInformation()
        assert info.Model == "SimPTZ-1"
        media = await cam.create_media_service()
        token = (await media.GetProfiles())[0].token
        uri = await media.GetStreamUri(
            {
                "ProfileToken": token,
                "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
            }
        )
        assert uri.Uri == sim.rtsp_url
        ptz = await cam.create_ptz_service()
        presets = {p.Name: p.token for p in await ptz.GetPresets({"ProfileToken": token})}
        assert set(presets) == set(PRESETS)
        await ptz.GotoPreset({"ProfileToken": token, "PresetToken": presets["entrance"]})
        status = await ptz.GetStatus({"ProfileToken": token})
        assert status.Position.PanTilt.x == pytest.approx(-0.8)
        assert status.Position.Zoom.x == pytest.approx(0.5)
        with pytest.raises(Fault, match="no preset"):
            await ptz.GotoPreset({"ProfileToken": token, "PresetToken": "nope"})
        await ptz.ContinuousMove(
            {
                "ProfileToken": token,
                "Velocity": {"PanTilt": {"x": 1.0, "y": 0.0}, "Zoom": {"x": 0.0}},
                "Timeout": "PT0.6S",
            }
        )
        await asyncio.sleep(1.0)
        moved = await ptz.GetStatus({"ProfileToken": token})
        assert moved.Position.PanTilt.x > -0.8 + 0.1
        jpeg = await cam.get_snapshot(token)  # HTTP Digest auth, like a real camera
        assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
    finally:
        await cam.close()


async def test_wrong_password_is_refused(sim: CameraSim) -> None:
    cam = ONVIFCamera("127.0.0.1", sim.onvif_port, USER, "wrong")
    try:
        with pytest.raises((Fault, ONVIFError), match="not authorized"):
            await cam.update_xaddrs()
            await (await cam.create_devicemgmt_service()).GetDeviceInformation()
    finally:
        await cam.close()


async def test_pullpoint_delivers_motion_and_ptz_events(sim: CameraSim) -> None:
    cam = await _client(sim)
    try:
        manager = await cam.create_pullpoint_manager(timedelta(seconds=60), lambda: None)
        pull = manager.get_service()
        media = await cam.create_media_service()
        token = (await media.GetProfiles())[0].token
        ptz = await cam.create_ptz_service()
        preset = (await ptz.GetPresets({"ProfileToken": token}))[1].token
        await ptz.GotoPreset({"ProfileToken": token, "PresetToken": preset})
        topics: set[str] = set()
        for _ in range(10):
            reply = await pull.PullMessages({"Timeout": "PT2S", "MessageLimit": 20})
            topics |= {m.Topic._value_1 for m in reply.NotificationMessage}
            if {"tns1:VideoSource/MotionAlarm", "tns1:PTZController/PresetReached"} <= topics:
                break
        assert "tns1:VideoSource/MotionAlarm" in topics
        assert "tns1:PTZController/PresetReached" in topics
        await manager.shutdown()
    finally:
        await cam.close()


async def test_preset_change_visibly_changes_the_rtsp_picture(sim: CameraSim) -> None:
    wide = await asyncio.to_thread(grab_rtsp_frame, sim.rtsp_url)
    assert wide.shape[:2] == (480, 640)
    token = next(t for t, (name, _) in sim.head.presets.items() if name == "entrance")
    sim.head.goto(sim.head.presets[token][1])
    await asyncio.sleep(1.0)
    zoomed = await asyncio.to_thread(grab_rtsp_frame, sim.rtsp_url)
    g1, g2 = (cv2.cvtColor(f, cv2.COLOR_BGR2GRAY).astype(np.int16) for f in (wide, zoomed))
    # Moving people alone change a few grey levels on average; a new view changes many.
    assert float(np.mean(np.abs(g1 - g2))) > 15


LEGACY_CLIENT = Path(__file__).resolve().parents[1] / "support" / "camera_legacy_onvif_client.py"


async def test_legacy_onvif_zeep_client_interoperates(sim: CameraSim) -> None:
    if not LEGACY_PYTHON.is_file():
        pytest.skip(f"legacy onvif-zeep venv missing at {LEGACY_PYTHON} (make camera-interop)")
    script = str(LEGACY_CLIENT)
    proc = await asyncio.create_subprocess_exec(
        str(LEGACY_PYTHON),
        script,
        "127.0.0.1",
        str(sim.onvif_port),
        USER,
        PASSWORD,
        stdout=asyncio.subprocess.PIPE,
    )
    out = json.loads((await asyncio.wait_for(proc.communicate(), 120))[0])
    assert "error" not in out, out
    assert out["model"] == "SimPTZ-1"
    assert out["stream_uri"] == sim.rtsp_url
    assert out["presets"] == list(PRESETS)
    assert out["pan"] == pytest.approx(0.8)  # went to the last preset, "square"
    assert "State=true" in out["event_items"] or "State=false" in out["event_items"]
