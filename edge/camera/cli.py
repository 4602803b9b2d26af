"""``tourpulse edge camera --camera <id>``: run the camera edge agent for one configured camera.

Exit codes: 0 after a clean stop (SIGINT/SIGTERM), 2 for bad configs or missing credentials.
Serves /metrics and /healthz (``--metrics-port``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from core.mqtt_client import MqttClientSettings
from core.observability import Health, ObservabilityServer
from core.settings import get_settings
from device_configs.loader import ConfigError, load_device_configs
from edge.link import LinkIdentity, MqttLink, MqttLinkConfig
from edge.wifi.cli import edge_group
from schemas.topics import DeviceKind

if TYPE_CHECKING:
    from edge.camera.agent import CameraAgent


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = edge_group(sub).add_parser(
        "camera",
        help="camera edge agent: ONVIF PTZ/events, people counts, audio level -> MQTT",
        description="Connect to the camera's ONVIF service, count people in the configured "
        "zones and lines, measure audio loudness, obey commands from the cmd topic and "
        "publish everything through the durable outbox.",
    )
    p.add_argument("--camera", required=True, help="camera id from the device configs")
    p.add_argument(
        "--outbox",
        type=Path,
        default=None,
        help="outbox SQLite file (default: <data dir>/edge/<camera>.sqlite)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="/metrics + /healthz port (default: any free port, printed at start)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: `tourpulse edge wifi` registers this module too, and a Wi-Fi site box
    # has no OpenCV/ONVIF (install profile edge-wifi).
    from edge.camera.agent import CameraAgent

    settings = get_settings()
    try:
        configs = load_device_configs(settings.device_configs)
        camera = next(c for c in configs.cameras if c.id == args.camera)
        if camera.setup is None:
            raise LookupError(f"camera {camera.id} has no setup in cameras.yaml")
        credentials = camera.setup.onvif.credentials.resolve()
    except StopIteration:
        print(f"error: no camera {args.camera!r} in {settings.device_configs}")
        return 2
    except (ConfigError, LookupError) as exc:
        print(f"error: {exc}")
        return 2
    outbox = args.outbox or settings.data_dir / "edge" / f"{camera.id}.sqlite"
    outbox.parent.mkdir(parents=True, exist_ok=True)
    try:  # the camera's own MQTT user, password and TLS from TP_MQTT_* (see devices acl)
        mqtt_settings = MqttClientSettings.from_env()
    except ValueError as exc:
        print(f"error: MQTT settings: {exc}")
        return 2
    link = MqttLink(
        MqttLinkConfig(
            host=mqtt_settings.host,
            port=mqtt_settings.port,
            username=mqtt_settings.username,
            password_env="TP_MQTT_PASSWORD" if mqtt_settings.password else None,
            tls_ca=mqtt_settings.tls_ca,
            tls_cert=mqtt_settings.tls_cert,
            tls_key=mqtt_settings.tls_key,
            outbox_path=outbox,
        ),
        LinkIdentity(camera.site, camera.id, DeviceKind.CAMERA),
        software="tourpulse-edge-camera",
    )
    agent = CameraAgent(
        camera,
        credentials,
        link,
        mqtt_settings,
        detector_model=settings.camera_detector_model,
        detect_fps=settings.camera_detect_fps,
    )

    def health() -> Health:
        h = agent.health()
        return Health(
            h.reachable and h.streaming and link.connected,
            {**h.model_dump(), "mqtt": link.connected},
        )

    server = ObservabilityServer(args.metrics_port, health).start()
    print(f"camera agent {camera.id}: metrics {server.url}/metrics", flush=True)
    link.start()
    try:
        asyncio.run(_main(agent))
    finally:
        link.stop()
        server.stop()
    return 0


async def _main(agent: CameraAgent) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await agent.run(stop)
