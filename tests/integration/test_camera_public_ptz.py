"""Public PTZ through the HTTP API against the ONVIF camera simulator: viewers get presets
and moves inside the camera's configured ``public_ptz`` box; the commands the broker
delivers, replayed on the camera, leave it inside that box. Operators are not limited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI

from api.cameras import router as cameras
from api.errors import install_error_handlers
from core.onvif_client import OnvifSession
from core.settings import Settings
from device_configs.loader import load_device_configs
from edge.camera_sim.server import CameraSim
from tests.support.camera_fixtures import (
    PASSWORD,
    PRESETS,
    USER,
    MqttCollector,
    require_pets,
    write_camera_configs,
)


def _sent(cmds: MqttCollector, action: str) -> list[dict[str, Any]]:
    """The commands of one action the broker delivered (the tour scheduler sends presets)."""
    out = [m["data"]["command"] for m in cmds.of_type("camera.command")]  # type: ignore[index]
    return [c for c in out if c["action"] == action]


LIMITS = {"pan": [-0.5, 0.5], "tilt": [-0.2, 0.2], "zoom": [0.0, 0.4]}


@pytest.fixture
async def sim() -> AsyncIterator[CameraSim]:
    camera = CameraSim(require_pets(), username=USER, password=PASSWORD, presets=PRESETS)
    await camera.start()
    try:
        yield camera
    finally:
        await camera.close()


def _configs(root: Path, port: int, site: str, public: bool) -> None:
    write_camera_configs(root, port, site=site, camera="cam1")
    doc = yaml.safe_load((root / "cameras.yaml").read_text())
    setup = doc["cameras"][0]["setup"]
    if public:
        setup["public_ptz"] = LIMITS
    else:
        setup.pop("public_ptz", None)
    (root / "cameras.yaml").write_text(yaml.safe_dump(doc))


async def _api(
    root: Path, stack: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[FastAPI, httpx.AsyncClient]:
    monkeypatch.setenv("TP_CAMERA_USER", USER)
    monkeypatch.setenv("TP_CAMERA_PASSWORD", PASSWORD)
    monkeypatch.setenv("TP_CAMERA_OPERATOR_KEY", "s3cret")
    app = FastAPI(lifespan=cameras.lifespan)
    app.state.settings = Settings(mqtt_host=stack.mqtt_host, mqtt_port=stack.mqtt_port)
    app.state.device_configs = load_device_configs(root)
    install_error_handlers(app)
    app.include_router(cameras.router)
    return app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def _position(sim: CameraSim) -> tuple[float, float, float]:
    session = OnvifSession("127.0.0.1", sim.onvif_port, USER, PASSWORD)
    await session.connect()
    try:
        return await session.position()
    finally:
        await session.close()


async def _replay(sim: CameraSim, command: dict[str, Any]) -> None:
    """Run a delivered move on the camera as the edge agent would, and wait for it to end."""
    session = OnvifSession("127.0.0.1", sim.onvif_port, USER, PASSWORD)
    await session.connect()
    try:
        await session.move(command["pan"], command["tilt"], command["zoom"], command["timeout_s"])
        await asyncio.sleep(command["timeout_s"] + 0.3)
    finally:
        await session.close()


async def test_viewer_moves_stop_at_the_configured_limits(
    sim: CameraSim, stack: Any, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configs(tmp_path, sim.onvif_port, namespace, public=True)
    app, http = await _api(tmp_path, stack, monkeypatch)
    cmds = MqttCollector(stack.mqtt_host, stack.mqtt_port, f"tp/v1/{namespace}/camera/cam1/cmd")
    cam = "/api/v1/cameras/cam1"
    try:
        async with cameras.lifespan(app), http:
            lease = (await http.post(f"{cam}/ptz/lease", json={})).json()
            auth = {"X-PTZ-Lease": lease["token"]}
            # the camera starts at pan 0: a 10 s full-speed pan right is cut to the 0.5 limit
            r = await http.post(
                f"{cam}/ptz", json={"action": "move", "pan": 1, "timeout_s": 10}, headers=auth
            )
            assert r.status_code == 202, r.text
            move = (await cmds.wait_for("the bounded move", lambda: _sent(cmds, "move")))[-1]
            assert move["pan"] == 1 and move["timeout_s"] == pytest.approx(1.0, abs=0.05)
            await _replay(sim, move)
            pan, tilt, zoom = await _position(sim)
            assert pan == pytest.approx(0.5, abs=0.06) and tilt == 0 and zoom == 0
            # at the limit: further right is refused, left and zoom-in still allowed
            r = await http.post(f"{cam}/ptz", json={"action": "move", "pan": 1}, headers=auth)
            assert r.status_code == 422 and r.json()["error"]["code"] == "ptz_limit"
            r = await http.post(
                f"{cam}/ptz",
                json={"action": "move", "pan": 0.5, "zoom": 1, "timeout_s": 5},
                headers=auth,
            )
            assert r.status_code == 202, r.text
            await cmds.wait_for("the zoom move", lambda: len(_sent(cmds, "move")) >= 2)
            zoom_move = _sent(cmds, "move")[-1]
            assert zoom_move["pan"] == 0 and zoom_move["zoom"] == 1
            assert zoom_move["timeout_s"] == pytest.approx(1.0, abs=0.05)  # 0.4 / 0.4 per s
            # presets stay allowed for viewers, outside the box too
            r = await http.post(
                f"{cam}/ptz", json={"action": "goto_preset", "preset": "entrance"}, headers=auth
            )
            assert r.status_code == 202
            # an operator is not limited
            await http.delete(f"{cam}/ptz/lease", headers=auth)
            op = (
                await http.post(f"{cam}/ptz/lease", json={}, headers={"X-Operator-Key": "s3cret"})
            ).json()
            r = await http.post(
                f"{cam}/ptz",
                json={"action": "move", "pan": 1, "timeout_s": 10},
                headers={"X-PTZ-Lease": op["token"]},
            )
            assert r.status_code == 202
            await cmds.wait_for("the operator move", lambda: len(_sent(cmds, "move")) >= 3)
            assert _sent(cmds, "move")[-1]["timeout_s"] == 10
    finally:
        cmds.close()


async def test_without_public_limits_viewers_can_only_choose_presets(
    sim: CameraSim, stack: Any, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configs(tmp_path, sim.onvif_port, namespace, public=False)
    app, http = await _api(tmp_path, stack, monkeypatch)
    cam = "/api/v1/cameras/cam1"
    async with cameras.lifespan(app), http:
        auth = {"X-PTZ-Lease": (await http.post(f"{cam}/ptz/lease", json={})).json()["token"]}
        r = await http.post(f"{cam}/ptz", json={"action": "move", "pan": 0.2}, headers=auth)
        assert r.status_code == 403 and r.json()["error"]["code"] == "presets_only"
        r = await http.post(
            f"{cam}/ptz", json={"action": "goto_preset", "preset": "wide"}, headers=auth
        )
        assert r.status_code == 202


def test_public_limits_are_validated() -> None:
    from device_configs.camera import PtzLimits

    with pytest.raises(ValueError, match="minimum"):
        PtzLimits.model_validate({**LIMITS, "pan": [0.5, -0.5]})
    with pytest.raises(ValueError):
        PtzLimits.model_validate({**LIMITS, "zoom": [-0.1, 0.4]})
