"""Per-camera state the API keeps: ONVIF access, the video feed, PTZ leases, the tour.

Created in the feature lifespan (``api.cameras.router.lifespan``) and closed there, so no
peer connection, RTSP pull or MQTT client outlives the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import av
import paho.mqtt.client as mqtt

from api.cameras.lease import PtzLeases
from api.cameras.limits import PeerCaps, SnapshotCache
from api.cameras.settings import CameraApiSettings
from api.cameras.whep import CameraFeed, ice_servers
from core.mqtt_client import MqttClientSettings, make_mqtt_client
from core.onvif_client import REFUSED_ERRORS, UNREACHABLE_ERRORS, OnvifSession
from device_configs.camera import Tour, TourStep
from device_configs.models import Camera
from schemas.camera import CameraCommandV1
from schemas.codec import encode_event
from schemas.envelope import utc_now
from schemas.topics import DeviceKind, MqttStream, MqttTopic

log = logging.getLogger(__name__)
ONVIF_ERRORS: tuple[type[BaseException], ...] = (*UNREACHABLE_ERRORS, *REFUSED_ERRORS, LookupError)


@dataclass
class TourState:
    tour: Tour
    step: int = 0
    started_at: float = 0.0

    @property
    def current(self) -> TourStep:
        return self.tour.steps[self.step]


@dataclass
class CameraState:
    camera: Camera
    settings: CameraApiSettings = field(default_factory=CameraApiSettings)
    leases: PtzLeases = field(default_factory=PtzLeases)
    peers: PeerCaps = field(init=False)
    snapshots: SnapshotCache = field(default_factory=SnapshotCache)
    feed: CameraFeed | None = None
    session: OnvifSession | None = None
    tour: TourState | None = None
    preset: str | None = None
    last_error: str | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.peers = PeerCaps(self.settings.peers_per_camera, self.settings.peers_per_ip)

    async def onvif(self) -> OnvifSession:
        """A connected ONVIF session (reconnected after a failure)."""
        async with self._lock:
            if self.session is None:
                setup = self.camera.setup
                assert setup is not None
                session = OnvifSession(
                    setup.onvif.host, setup.onvif.port, *setup.onvif.credentials.resolve()
                )
                try:
                    await session.connect()
                except BaseException:
                    await session.close()
                    raise
                self.session = session
            return self.session

    async def drop_session(self, error: BaseException) -> None:
        self.last_error = f"{type(error).__name__}: {error}"
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def video_feed(self) -> CameraFeed:
        """The relay of the camera's *anonymised* stream (served by its edge agent, heads
        blurred and privacy masks filled); the camera's raw RTSP is never pulled here."""
        if self.feed is None:
            setup = self.camera.setup
            url = setup.anonymised_stream if setup else None
            if url is None:
                raise LookupError(f"camera {self.camera.id} has no anonymised_stream configured")
            self.feed = CameraFeed(url, ice_servers(self.settings.ice_servers))
        return self.feed

    async def warm(self) -> None:
        """Open the camera pull before the first viewer arrives (tour cameras are watched)."""
        try:
            await (await self.video_feed()).source()
        except ONVIF_ERRORS as exc:
            await self.drop_session(exc)
        except av.FFmpegError as exc:
            self.last_error = f"stream: {exc}"

    async def close(self) -> None:
        if self.feed is not None:
            await self.feed.close()
        if self.session is not None:
            await self.session.close()


class CommandSender:
    """Publishes camera commands on MQTT (QoS 1); the edge agent executes them."""

    def __init__(self, mqtt_settings: MqttClientSettings) -> None:
        """``mqtt_settings`` carry the API's identity: the only one the ACL lets write cmd."""
        self._client = make_mqtt_client(mqtt_settings, f"tp-api-cameras-{uuid.uuid4().hex[:8]}")
        self._client.reconnect_delay_set(1, 10)
        self._client.connect_async(mqtt_settings.host, mqtt_settings.port, keepalive=30)
        self._client.loop_start()

    def send(self, camera: Camera, issued_by: str, action: dict[str, Any]) -> str:
        command_id = uuid.uuid4().hex[:16]
        event = CameraCommandV1.model_validate(
            {
                "site": camera.site,
                "device": camera.id,
                "source": "api.cameras",
                "event_time": utc_now(),
                "data": {"command_id": command_id, "issued_by": issued_by[:64], "command": action},
            }
        )
        topic = MqttTopic.build(camera.site, DeviceKind.CAMERA, camera.id, MqttStream.CMD)
        info = self._client.publish(str(topic), encode_event(event), qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
            raise ConnectionError(f"MQTT publish failed: rc={info.rc}")
        log.debug("command %s -> %s: %s", command_id, topic, json.dumps(action))
        return command_id

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.disconnect()
        self._client.loop_stop()
