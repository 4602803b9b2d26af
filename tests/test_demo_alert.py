"""The demo's promise: the overcrowding alert at the rice-paper village within 2 minutes.

Runs the demo's own pieces (gateway, worker, flows, alerts and the simulator with exactly
the demo's arguments, `infra.demo.simulator_args`) through real Mosquitto, Kafka and
PostgreSQL, for the festival site only, published as ``<namespace>-<site>`` so the run is
isolated from other tests on the shared stack. The simulator draws each site from its own
random stream, so leaving the other 19 sites out changes nothing for this one.

The demo also runs a camera agent at the village whose video is the PETS 2009 pedestrian
clip (a handful of people, nothing to do with the simulated festival). Its counts are fed
here as camera metadata on Kafka at the agent's rate: they once calibrated the site down
to ~0.1 people per phone, so the festival never reached the threshold.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from edge_wifi_support import spawn_cli, stop_process
from kafka_helpers import create_topics
from worker_support import query, tail

from infra.demo import SURGE_SITE, simulator_args
from infra.settings import Settings
from schemas.camera import CameraMetadataV1, VideoMetadata
from schemas.codec import encode_event
from schemas.topics import KafkaTopic

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PROMISE_S = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _pedestrian_camera(settings: Settings, site: str) -> None:
    """The demo camera's counts: 3-7 people in its zone, once per second."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for n in range(10**6):
            data = VideoMetadata(zones={"path": 3 + n % 5}, people=4 + n % 5)
            event = CameraMetadataV1(site=site, device=f"{site}-cam1", source="test.camera",
                                     event_time=datetime.now(UTC), data=data)  # fmt: skip
            topic = settings.kafka_topic(KafkaTopic.CAMERA_METADATA)
            await producer.send_and_wait(topic, encode_event(event), key=site.encode())
            await asyncio.sleep(1.0)
    finally:
        await producer.stop()


async def test_demo_festival_raises_overcrowding_within_two_minutes(
    settings: Settings, namespace: str, tmp_path: Path
) -> None:
    site = f"{namespace}-{SURGE_SITE}"
    await create_topics(settings.kafka_bootstrap, [settings.kafka_topic(t) for t in KafkaTopic])
    env = dict(os.environ)
    env.update(
        TP_TOPIC_NAMESPACE=namespace,
        TP_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        TP_MQTT_HOST=settings.mqtt_host,
        TP_MQTT_PORT=str(settings.mqtt_port),
        DATABASE_URL=settings.database_url,
        TP_DATA_DIR=str(settings.data_dir),
    )
    fast_group = ["--group-session-timeout", "6", "--heartbeat-interval", "1"]
    services = {
        "gateway": ["gateway", "--site", site, "--share-group", namespace,
                    "--client-id", f"{namespace}-gw", "--metrics-port", "0"],
        "worker": ["worker", "--metrics-port", "0", *fast_group],
        "flows": ["flows", "--metrics-port", "0", *fast_group],
        "alerts": ["alerts", "--metrics-port", "0", "--web-port", str(_free_port())],
    }  # fmt: skip
    procs = {n: spawn_cli(argv, env, tmp_path / f"{n}.log") for n, argv in services.items()}
    camera: asyncio.Task[None] | None = None
    try:
        await asyncio.sleep(3.0)  # consumers subscribe before the simulator publishes
        start = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
        began = time.monotonic()
        argv = simulator_args(10.0, start, settings.device_configs)
        argv += ["--sites", SURGE_SITE, "--site-prefix", namespace]
        procs["simulator"] = spawn_cli(argv, env, tmp_path / "simulator.log")
        camera = asyncio.create_task(_pedestrian_camera(settings, site))
        found: list[tuple[object, ...]] = []
        while time.monotonic() - began < PROMISE_S and not found:
            for name, proc in procs.items():
                assert proc.poll() is None, f"{name} exited:\n{tail(tmp_path / f'{name}.log')}"
            found = query(
                settings.database_url,
                "SELECT state, details FROM alerts "
                f"WHERE site = '{site}' AND type = 'occupancy.high'",
            )
            await asyncio.sleep(2.0)
        took = time.monotonic() - began
        logs = "\n".join(f"--- {n}\n{tail(tmp_path / f'{n}.log', 1500)}" for n in procs)
        assert found, f"no overcrowding alert within {PROMISE_S:.0f} s\n{logs}"
        state, details = found[0]
        assert state == "ACTIVE_UNACK"
        assert isinstance(details, dict) and details["ratio"] >= 0.9, details
        print(f"overcrowding alert after {took:.0f} s: {details}")
    finally:
        if camera is not None:
            camera.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await camera
        for proc in reversed(procs.values()):
            stop_process(proc)
