"""Camera data into the spine, through the real entry points the demo runs:

``tourpulse simulate camera --demo`` (ONVIF + RTSP) -> ``tourpulse edge camera`` ->
Mosquitto -> ``tourpulse gateway`` -> Kafka ``<ns>.tp.camera.*.v1``. As in the demo, the
simulator picks demo credentials itself and the agent gets them from
:func:`edge.camera_sim.demo.demo_env`.

The gateway alone creates the Kafka topics here (no test pre-creates them), with a partition
count the broker's auto-creation would not pick, so the test also proves that the camera
topics are among the topics the gateway prepares at start-up.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from core.settings import Settings
from edge.camera_sim.demo import demo_env
from schemas.camera import CameraAudioLevelV1, CameraHealthV1, CameraMetadataV1, CameraOnvifEventV1
from schemas.codec import decode_event
from schemas.envelope import EventBase
from schemas.topics import KafkaTopic
from tests.support.camera_fixtures import require_pets, write_camera_configs
from tests.support.edge_wifi_support import healthy, spawn_cli, stop_process
from tests.support.net import free_port, wait_until

pytestmark = pytest.mark.integration
E = TypeVar("E", bound=EventBase)

PARTITIONS = 3
CAMERA_TOPICS = {
    KafkaTopic.CAMERA_METADATA: CameraMetadataV1,
    KafkaTopic.CAMERA_AUDIO: CameraAudioLevelV1,
    KafkaTopic.CAMERA_HEALTH: CameraHealthV1,
    KafkaTopic.CAMERA_EVENT: CameraOnvifEventV1,  # the simulator's own motion events
}


async def _partitions(bootstrap: str, topics: list[str], within: float = 30.0) -> dict[str, int]:
    """Partition counts of ``topics`` once the broker describes them all without error.

    A topic the controller has just created can still be unknown to the broker's metadata
    cache, or leaderless, for a moment (CI once saw none of the four right after the
    gateway reported them created), so this waits for that to pass rather than judging it.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    deadline = asyncio.get_running_loop().time() + within
    try:
        while True:
            described = await admin.describe_topics(topics)
            found = {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
            if len(found) == len(topics) or asyncio.get_running_loop().time() > deadline:
                return found
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def _first(
    kafka_admin: Any, topic: str, model: type[E], ok: Callable[[E], bool] = lambda _: True
) -> E:
    """The first ``model`` event on ``topic`` that is ``ok`` (other event types share topics;
    the first seconds of a camera may still be warming up)."""
    events: list[EventBase] = []
    for _ in range(60):
        records = await kafka_admin.consume_all(topic, len(events) + 1, timeout=120)
        events = [decode_event(r.value) for r in records]
        found = [e for e in events if isinstance(e, model) and ok(e)]
        if found:
            return found[0]
    raise AssertionError(f"no suitable {model.__name__} on {topic}: {events[-5:]}")


async def test_camera_events_reach_kafka_through_mosquitto_and_the_gateway(
    settings: Settings, namespace: str, kafka_admin: Any, tmp_path: Path
) -> None:
    video = require_pets()
    onvif_port, gateway_port = free_port(), free_port()
    configs = tmp_path / "configs"
    configs.mkdir()
    write_camera_configs(configs, onvif_port, site=namespace, camera="cam1")
    base = {k: v for k, v in os.environ.items() if not k.startswith("TP_CAMERA_")}
    env = {
        **base,
        "TP_DEVICE_CONFIGS": str(configs),
        "TP_DATA_DIR": str(tmp_path / "data"),
        "TP_MQTT_HOST": settings.mqtt_host,
        "TP_MQTT_PORT": str(settings.mqtt_port),
        "TP_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "TP_TOPIC_NAMESPACE": namespace,
    }
    logs = {name: tmp_path / f"{name}.log" for name in ("gateway", "sim", "agent")}
    procs = {}
    try:
        procs["gateway"] = spawn_cli(
            ["gateway", "--site", namespace, "--share-group", namespace, "--client-id",
             f"gw-{namespace}", "--partitions", str(PARTITIONS), "--metrics-port",
             str(gateway_port), "--session-expiry", "60"],
            env, logs["gateway"],
        )  # fmt: skip
        await asyncio.to_thread(
            wait_until, lambda: healthy(gateway_port), 120, "gateway healthy (topics, MQTT)"
        )
        names = {t: settings.kafka_topic(t) for t in CAMERA_TOPICS}
        created = await _partitions(settings.kafka_bootstrap, list(names.values()))
        assert created == dict.fromkeys(names.values(), PARTITIONS), created

        procs["sim"] = spawn_cli(["simulate", "camera", "--demo"], env, logs["sim"])
        await asyncio.to_thread(
            wait_until, lambda: "RTSP rtsp://" in logs["sim"].read_text(), 120, "simulator up"
        )
        assert str(video) in logs["sim"].read_text()  # the shared clip: nothing downloaded
        agent_env = {**env, **demo_env(configs, env)}
        procs["agent"] = spawn_cli(["edge", "camera", "--camera", "cam1"], agent_env, logs["agent"])

        meta = await _first(
            kafka_admin, names[KafkaTopic.CAMERA_METADATA], CameraMetadataV1,
            lambda e: e.data.fps > 0,
        )  # fmt: skip
        assert (meta.site, meta.device) == (namespace, "cam1")
        assert meta.ingest_time is not None and meta.data.preset == "wide"
        assert set(meta.data.zones) == {"path"}
        assert [line.line for line in meta.data.lines] == ["middle"]
        for topic, model in CAMERA_TOPICS.items():
            event = await _first(kafka_admin, names[topic], model)
            assert (event.site, event.device) == (namespace, "cam1")
            assert event.ingest_time is not None  # stamped by the gateway
        # The agent measures its frame rate per window, so a health report sent between
        # the first frame and the first window's end says streaming at 0.0 (once in CI).
        health = await _first(
            kafka_admin, names[KafkaTopic.CAMERA_HEALTH], CameraHealthV1,
            lambda e: e.data.reachable and e.data.streaming and e.data.stream_fps > 0,
        )  # fmt: skip
        assert health.data.stream_fps > 0
    finally:
        for name in ("agent", "sim", "gateway"):
            if name in procs:
                await asyncio.to_thread(stop_process, procs[name])
    totals = [line for line in logs["gateway"].read_text().splitlines() if "final totals" in line]
    assert totals and "dead-lettered 0," in totals[-1], logs["gateway"].read_text()[-3000:]
    for name, log in logs.items():
        assert "Traceback" not in log.read_text(), f"{name}:\n{log.read_text()[-3000:]}"
