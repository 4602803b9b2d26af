"""Commands to a camera over MQTT: validated before anything moves.

Every payload gets an answer: a malformed one becomes a ``CameraCommandResultV1`` with
``error="invalid"`` (carrying the command id when it could be read), never a silent drop.
The command topic subscriber runs on paho's thread and hands payloads to the asyncio loop.
A command older than :data:`MAX_COMMAND_AGE_S` (by its ``event_time``) is refused with
``error="expired"`` and counted: a PTZ move queued in a broker or replayed by someone who
captured it must not swing the camera long after the operator asked.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from prometheus_client import Counter
from pydantic import ValidationError

from core.mqtt_client import MqttClientSettings, make_mqtt_client
from schemas.camera import CameraCommandV1, CommandResult
from schemas.topics import DeviceKind, MqttStream, MqttTopic

log = logging.getLogger(__name__)
MAX_PAYLOAD = 16 * 1024
#: Oldest command (seconds since its event_time) the agent still executes; a little
#: clock skew into the future is tolerated by the same margin.
MAX_COMMAND_AGE_S = 5.0
REFUSED = Counter(
    "tp_camera_commands_refused_total", "Camera commands refused before execution", ["reason"]
)


def parse_command(
    payload: bytes, site: str, device: str, now: datetime | None = None
) -> CameraCommandV1 | CommandResult:
    """The command, or the error result to publish instead."""
    command_id: str | None = None
    try:
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
        raw = json.loads(payload)
        if isinstance(raw, dict) and isinstance(raw.get("data"), dict):
            cid = raw["data"].get("command_id")
            command_id = cid[:64] if isinstance(cid, str) else None
        cmd = CameraCommandV1.model_validate(raw)
    except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        REFUSED.labels("invalid").inc()
        return CommandResult(command_id=command_id, ok=False, error="invalid", detail=detail[:500])
    if cmd.site != site or cmd.device != device:
        REFUSED.labels("wrong_device").inc()
        return CommandResult(
            command_id=command_id,
            ok=False,
            error="invalid",
            detail=f"command addressed to {cmd.site}/{cmd.device}",
        )
    age = ((now or datetime.now(UTC)) - cmd.event_time).total_seconds()
    if abs(age) > MAX_COMMAND_AGE_S:
        REFUSED.labels("expired").inc()
        return CommandResult(
            command_id=command_id,
            ok=False,
            error="expired",
            detail=f"command issued {age:.1f} s ago (limit {MAX_COMMAND_AGE_S:.0f} s)",
        )
    return cmd


class CommandSubscriber:
    """MQTT 5 subscription to this camera's ``cmd`` topic, feeding an asyncio queue."""

    def __init__(
        self,
        mqtt_settings: MqttClientSettings,
        site: str,
        device: str,
        queue: asyncio.Queue[bytes],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.topic = str(MqttTopic.build(site, DeviceKind.CAMERA, device, MqttStream.CMD))
        self._queue, self._loop = queue, loop
        self._client = make_mqtt_client(mqtt_settings, f"tp-cmd-{site}-{device}")
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.reconnect_delay_set(1, 10)
        self._host, self._port = mqtt_settings.host, mqtt_settings.port
        self.subscribed = asyncio.Event()

    def start(self) -> None:
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("command subscriber refused by broker: %s", reason)
            return
        client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        """Ready only once the broker has granted the subscription (SUBACK): set on sending
        SUBSCRIBE, a command published meanwhile reached nobody (a flaky CI test showed it)."""
        if any(getattr(code, "is_failure", False) for code in codes):
            log.warning("command subscription refused by broker: %s", codes)
            return
        self._loop.call_soon_threadsafe(self.subscribed.set)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, bytes(msg.payload))
