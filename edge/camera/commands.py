"""Commands to a camera over MQTT: validated before anything moves.

Every payload gets an answer: a malformed one becomes a ``CameraCommandResultV1`` with
``error="invalid"`` (carrying the command id when it could be read), never a silent drop.
The command topic subscriber runs on paho's thread and hands payloads to the asyncio loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from schemas.camera import CameraCommandV1, CommandResult
from schemas.topics import DeviceKind, MqttStream, MqttTopic

log = logging.getLogger(__name__)
MAX_PAYLOAD = 16 * 1024


def parse_command(payload: bytes, site: str, device: str) -> CameraCommandV1 | CommandResult:
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
        return CommandResult(command_id=command_id, ok=False, error="invalid", detail=detail[:500])
    if cmd.site != site or cmd.device != device:
        return CommandResult(
            command_id=command_id,
            ok=False,
            error="invalid",
            detail=f"command addressed to {cmd.site}/{cmd.device}",
        )
    return cmd


class CommandSubscriber:
    """MQTT 5 subscription to this camera's ``cmd`` topic, feeding an asyncio queue."""

    def __init__(
        self,
        host: str,
        port: int,
        site: str,
        device: str,
        queue: asyncio.Queue[bytes],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.topic = str(MqttTopic.build(site, DeviceKind.CAMERA, device, MqttStream.CMD))
        self._queue, self._loop = queue, loop
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"tp-cmd-{device}", protocol=mqtt.MQTTv5
        )
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(1, 10)
        self._host, self._port = host, port
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
        self._loop.call_soon_threadsafe(self.subscribed.set)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, bytes(msg.payload))
