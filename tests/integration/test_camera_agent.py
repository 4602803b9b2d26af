"""Camera agent <-> simulator over real ONVIF/SOAP and RTSP; events and commands via Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.mqtt_client import MqttClientSettings
from device_configs.models import Camera
from edge.camera.agent import CameraAgent
from edge.camera_sim.server import CameraSim
from edge.link import LinkIdentity, MqttLink, MqttLinkConfig
from schemas.topics import DeviceKind, MqttStream, MqttTopic
from tests.support.camera_fixtures import PASSWORD, PRESETS, USER, MqttCollector, require_pets
from tests.support.net import free_port

pytestmark = pytest.mark.integration
#: A fit as `tourpulse camera calibrate` writes it: true = 1.5 * count + 0.5.
CALIBRATION = {
    "a": 1.5,
    "b": 0.5,
    "n": 30,
    "x_mean": 4.0,
    "sxx": 100.0,
    "residual_sd": 1.0,
    "t": 1.7,
}


def _camera(site: str, port: int) -> Camera:
    return Camera.model_validate(
        {
            "id": "cam1",
            "site": site,
            "name": "test camera",
            "setup": {
                "onvif": {
                    "host": "127.0.0.1",
                    "port": port,
                    "credentials": {
                        "username_env": "TP_TEST_CAM_USER",
                        "password_env": "TP_TEST_CAM_PASSWORD",
                    },
                },
                "presets": [
                    {
                        "name": "wide",
                        "zones": [{"name": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
                        "lines": [{"name": "middle", "a": [0.5, 0.2], "b": [0.5, 1.0]}],
                        "calibration": CALIBRATION,
                    },
                    {"name": "entrance", "pan": -0.8, "tilt": 0.3, "zoom": 0.5},
                ],
                "tours": [
                    {
                        "name": "t",
                        "steps": [
                            {
                                "preset": "entrance",
                                "dwell_s": 3,
                                "narration_vi": "a",
                                "narration_en": "b",
                            }
                        ],
                    }
                ],
            },
        }
    )


@pytest.fixture
async def sim() -> AsyncIterator[CameraSim]:
    camera = CameraSim(
        require_pets(), username=USER, password=PASSWORD, presets=PRESETS, onvif_port=free_port()
    )
    await camera.start()
    try:
        yield camera
    finally:
        await camera.close()


@pytest.fixture
def link(stack, namespace: str, tmp_path: Path) -> Iterator[MqttLink]:
    mlink = MqttLink(
        MqttLinkConfig(
            host=stack.mqtt_host, port=stack.mqtt_port, outbox_path=tmp_path / "outbox.sqlite"
        ),
        LinkIdentity(namespace, "cam1", DeviceKind.CAMERA),
    )
    mlink.start()
    yield mlink
    mlink.stop()


@contextlib.asynccontextmanager
async def running(agent: CameraAgent) -> AsyncIterator[CameraAgent]:
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        yield agent
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def _mqtt(stack: object) -> MqttClientSettings:
    return MqttClientSettings(host=stack.mqtt_host, port=stack.mqtt_port)  # type: ignore[attr-defined]


def _command(site: str, action: dict[str, object], issued: datetime | None = None) -> bytes:
    issued = issued or datetime.now(UTC)
    return json.dumps(
        {
            "type": "camera.command",
            "version": 1,
            "site": site,
            "device": "cam1",
            "source": "test",
            "event_time": issued.isoformat(),
            "data": {"command_id": uuid.uuid4().hex[:12], "issued_by": "test", "command": action},
        }
    ).encode()


async def test_counts_audio_events_and_commands_round_trip(sim, link, stack, namespace) -> None:
    collector = MqttCollector(stack.mqtt_host, stack.mqtt_port, f"tp/v1/{namespace}/#")
    agent = CameraAgent(_camera(namespace, sim.onvif_port), (USER, PASSWORD), link, _mqtt(stack))
    cmd_topic = str(MqttTopic.build(namespace, DeviceKind.CAMERA, "cam1", MqttStream.CMD))
    try:
        async with running(agent):
            meta = await collector.wait_for(
                "per-second counts",
                lambda: [m for m in collector.of_type("camera.metadata") if m["data"]["fps"] > 0],
            )
            assert meta[0]["data"]["preset"] == "wide"
            assert "all" in meta[0]["data"]["zones"]
            for m in meta:  # every count event carries the calibrated value and its interval
                cal, people = m["data"]["calibrated"], m["data"]["people"]
                assert cal["target"] == "people" and cal["labelled_frames"] == 30
                assert cal["value"] == pytest.approx(1.5 * people + 0.5, abs=0.01)
                assert cal["low"] < cal["value"] < cal["high"]
            await collector.wait_for("audio level", lambda: collector.of_type("camera.audio.level"))
            await collector.wait_for(
                "ONVIF motion event",
                lambda: [
                    m for m in collector.of_type("camera.onvif") if m["data"]["kind"] == "motion"
                ],
            )
            await collector.wait_for("command subscription", agent.subscriber.subscribed.is_set)

            def result_for(payload: bytes) -> dict[str, object]:
                cid = json.loads(payload)["data"]["command_id"]
                return next(
                    (
                        m["data"]
                        for m in collector.of_type("camera.command_result")
                        if m["data"]["command_id"] == cid
                    ),
                    None,
                )

            good = _command(namespace, {"action": "goto_preset", "preset": "entrance"})
            collector.publish(cmd_topic, good)
            assert (await collector.wait_for("goto result", lambda: result_for(good)))["ok"]
            assert sim.head.position().pan == pytest.approx(-0.8)

            unknown = _command(namespace, {"action": "goto_preset", "preset": "roof"})
            out_of_range = _command(namespace, {"action": "move", "pan": 5})
            # a command captured and replayed (or stuck in a queue) 30 s later never runs
            stale = _command(
                namespace,
                {"action": "goto_preset", "preset": "wide"},
                datetime.now(UTC) - timedelta(seconds=30),
            )
            cases = ((unknown, "unknown_preset"), (out_of_range, "invalid"), (stale, "expired"))
            for payload, error in cases:
                collector.publish(cmd_topic, payload)
                res = await collector.wait_for(error, lambda p=payload: result_for(p))
                assert (res["ok"], res["error"]) == (False, error)
            assert sim.head.position().pan == pytest.approx(-0.8)  # the stale goto never ran
            collector.publish(cmd_topic, b"{not json")
            await collector.wait_for(
                "error for malformed payload",
                lambda: [
                    m
                    for m in collector.of_type("camera.command_result")
                    if m["data"]["command_id"] is None and m["data"]["error"] == "invalid"
                ],
            )

            await collector.wait_for(
                "a few quiet audio windows",
                lambda: len(collector.of_type("camera.audio.level")) >= 5,
            )
            await sim.loud_noise(0.8)
            loud = await collector.wait_for(
                "loud noise", lambda: collector.of_type("camera.loud_noise")
            )
            assert loud[0]["data"]["rise_db"] >= 18
    finally:
        collector.close()


async def test_recovers_when_the_stream_stops_and_comes_back(sim, link, stack, namespace) -> None:
    agent = CameraAgent(_camera(namespace, sim.onvif_port), (USER, PASSWORD), link, _mqtt(stack))
    collector = MqttCollector(stack.mqtt_host, stack.mqtt_port, f"tp/v1/{namespace}/#")
    try:
        async with running(agent):
            await collector.wait_for("streaming", lambda: agent.video.streaming)
            await sim.stop_stream()
            await collector.wait_for("stream loss noticed", lambda: not agent.video.streaming)
            assert agent.health().streaming is False
            await sim.start_stream()
            n = len(collector.of_type("camera.metadata"))
            await collector.wait_for(
                "counts again",
                lambda: agent.video.streaming and len(collector.of_type("camera.metadata")) > n + 2,
                90,
            )
            assert agent.video.reconnects >= 1
    finally:
        collector.close()


async def test_wrong_password_and_unreachable_camera_are_reported(sim, link, stack, namespace):
    wrong = CameraAgent(_camera(namespace, sim.onvif_port), (USER, "nope"), link, _mqtt(stack))
    gone = CameraAgent(_camera(namespace, free_port()), (USER, PASSWORD), link, _mqtt(stack))
    async with running(wrong), running(gone):
        collector = MqttCollector(stack.mqtt_host, stack.mqtt_port, "unused/#")
        try:
            await collector.wait_for(
                "auth error", lambda: "authentication" in (wrong.last_error or "")
            )
            await collector.wait_for("unreachable", lambda: gone.last_error)
        finally:
            collector.close()
        assert not wrong.reachable and not gone.reachable
