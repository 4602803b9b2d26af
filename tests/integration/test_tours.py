"""Tours: the shared PTZ lease rules, and the scheduler driving presets over real MQTT."""

from __future__ import annotations

import asyncio
import json

import pytest

from api.cameras.lease import PtzLeases
from api.cameras.state import CameraState, CommandSender
from api.cameras.tours import TourScheduler
from core.mqtt_client import MqttClientSettings
from device_configs.models import Camera
from tests.support.camera_fixtures import MqttCollector


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_controller_a_queue_and_expiry() -> None:
    clock = Clock()
    leases = PtzLeases(ttl=60, clock=clock)
    alice = leases.request("alice").lease
    assert alice is not None and leases.check(alice.token) is alice
    bob = leases.request("bob")
    carol = leases.request("carol")
    assert (bob.lease, bob.position, carol.position) == (None, 1, 2)
    clock.now += 30
    assert leases.renew(alice.token) is alice  # renewal pushes expiry to now + 60
    clock.now += 59
    assert leases.check(alice.token) is alice
    assert leases.request("bob").lease is None  # queued viewers keep asking (the page polls)
    assert leases.request("carol").lease is None
    clock.now += 2  # alice lapsed
    assert leases.check(alice.token) is None
    assert leases.request("carol").lease is None and leases.request("bob").lease is not None


def test_operator_takes_over_and_release_frees() -> None:
    leases = PtzLeases(clock=Clock())
    viewer = leases.request("viewer").lease
    assert viewer is not None
    op = leases.request("ops", operator=True).lease
    assert op is not None and op.operator and leases.check(viewer.token) is None
    assert not leases.release("not-a-token")
    assert leases.release(op.token)
    assert leases.request("viewer").lease is not None


def _camera(site: str) -> Camera:
    steps = [
        {"preset": p, "dwell_s": 3, "narration_vi": f"vi {p}", "narration_en": f"en {p}"}
        for p in ("wide", "entrance")
    ]
    return Camera.model_validate(
        {
            "id": "cam1",
            "site": site,
            "name": "c",
            "setup": {
                "onvif": {
                    "host": "127.0.0.1",
                    "port": 1,
                    "credentials": {"username_env": "U", "password_env": "P"},
                },
                "presets": [{"name": "wide"}, {"name": "entrance"}],
                "tours": [{"name": "t", "steps": steps}],
            },
        }
    )


@pytest.mark.integration
async def test_scheduler_walks_the_tour_and_pauses_for_a_lease(stack, namespace) -> None:
    collector = MqttCollector(stack.mqtt_host, stack.mqtt_port, f"tp/v1/{namespace}/camera/+/cmd")
    sender = CommandSender(MqttClientSettings(host=stack.mqtt_host, port=stack.mqtt_port))
    state = CameraState(_camera(namespace))
    scheduler = TourScheduler({"cam1": state}, sender)
    try:
        scheduler.start()

        def presets() -> list[str]:
            return [m["data"]["command"]["preset"] for m in collector.of_type("camera.command")]

        await collector.wait_for("tour steps", lambda: len(presets()) >= 3, 30)
        assert presets()[:3] == ["wide", "entrance", "wide"]
        assert state.tour is not None and state.tour.current.narration_en.startswith("en ")
        lease = state.leases.request("viewer").lease
        assert lease is not None
        count = len(presets())
        await asyncio.sleep(4)  # longer than a dwell: a held lease must pause the tour
        assert len(presets()) <= count + 1
        raw = collector.of_type("camera.command")[0]
        assert json.loads(json.dumps(raw))["data"]["issued_by"] == "tour-scheduler"
    finally:
        await scheduler.stop()
        sender.close()
        collector.close()
