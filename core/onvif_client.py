"""The agent's side of ONVIF, on onvif-zeep-async: discovery, media URIs, PTZ, PullPoint.

Failures are sorted into named groups per operation so the agent can tell "camera gone"
(retry with backoff) from "wrong password" (report; retrying will not help) from "the camera
refused this request" (a command error, the connection is fine).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
from onvif import ONVIFCamera
from onvif.exceptions import ONVIFAuthError, ONVIFError, ONVIFTimeoutError
from zeep.exceptions import Fault, TransportError, XMLSyntaxError

from schemas.camera import OnvifEvent

log = logging.getLogger(__name__)

#: The camera cannot be reached or answered garbage: retry with backoff.
UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,
    TransportError,
    XMLSyntaxError,
    ONVIFTimeoutError,
    TimeoutError,
    OSError,
)
#: The camera answered with a SOAP fault (bad argument, not authorized, unsupported...).
REFUSED_ERRORS: tuple[type[BaseException], ...] = (Fault, ONVIFError)
PULL_TIMEOUT = "PT5S"  # long-poll; keeps event latency low without busy polling
SUBSCRIPTION_TTL = timedelta(minutes=2)  # the manager renews well before expiry


class CameraAuthError(RuntimeError):
    """Wrong user or password: retrying with the same credentials will not help."""


def is_auth_fault(exc: BaseException) -> bool:
    return isinstance(exc, ONVIFAuthError) or "not authorized" in str(exc).lower()


@dataclass(frozen=True)
class CameraInfo:
    model: str
    serial: str
    profile: str
    stream_uri: str
    presets: dict[str, str]  # preset name -> ONVIF token


_KIND = {
    "MotionAlarm": "motion",
    "Tamper": "tamper",
    "DetectedSound": "audio",
    "GlobalSceneChange": "tamper",
}


def parse_notification(msg: Any) -> OnvifEvent:
    """One wsnt:NotificationMessage -> OnvifEvent; topic kind from its last segment."""
    topic = str(getattr(msg.Topic, "_value_1", "") or "")
    kind = next((v for k, v in _KIND.items() if k in topic), "other")
    source: dict[str, str] = {}
    active: bool | None = None
    payload = getattr(msg.Message, "_value_1", None)
    for part, items in _simple_items(payload):
        for name, value in items:
            if part == "Source":
                source[name[:64]] = value[:128]
            elif value.lower() in ("true", "false"):
                active = value.lower() == "true"
    return OnvifEvent(kind=kind, topic=topic[:256], active=active, source=source)


def _simple_items(payload: Any) -> list[tuple[str, list[tuple[str, str]]]]:
    """(Source|Data, [(Name, Value)]) from a tt:Message: zeep object or raw lxml element."""
    if payload is None:
        return []
    if hasattr(payload, "iter"):  # lxml: a client that left the message unparsed
        return [
            (
                part,
                [
                    (i.get("Name") or "", i.get("Value") or "")
                    for i in payload.iterfind(f"{{*}}{part}/{{*}}SimpleItem")
                ],
            )
            for part in ("Source", "Data")
        ]
    out = []
    for part in ("Source", "Data"):
        items = getattr(getattr(payload, part, None), "SimpleItem", None) or []
        out.append((part, [(str(i.Name or ""), str(i.Value or "")) for i in items]))
    return out


class OnvifSession:
    """One authenticated connection to a camera; ``connect`` raises the groups above."""

    def __init__(self, host: str, port: int, user: str, password: str) -> None:
        self.camera = ONVIFCamera(host, port, user, password)
        self.info: CameraInfo | None = None
        self._ptz: Any = None

    async def connect(self) -> CameraInfo:
        try:
            await self.camera.update_xaddrs()
            device = await self.camera.create_devicemgmt_service()
            di = await device.GetDeviceInformation()
            media = await self.camera.create_media_service()
            profile = (await media.GetProfiles())[0].token
            uri = await media.GetStreamUri(
                {
                    "ProfileToken": profile,
                    "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                }
            )
            self._ptz = await self.camera.create_ptz_service()
            presets = await self._ptz.GetPresets({"ProfileToken": profile})
        except REFUSED_ERRORS as exc:
            if is_auth_fault(exc):
                raise CameraAuthError(str(exc)) from exc
            raise
        self.info = CameraInfo(
            di.Model, di.SerialNumber, profile, uri.Uri, {p.Name: p.token for p in presets or []}
        )
        return self.info

    async def close(self) -> None:
        await self.camera.close()

    def _profile(self) -> str:
        if self.info is None:
            raise ONVIFError("not connected")
        return self.info.profile

    async def goto_preset(self, token: str) -> None:
        await self._ptz.GotoPreset({"ProfileToken": self._profile(), "PresetToken": token})

    async def move(self, pan: float, tilt: float, zoom: float, timeout_s: float) -> None:
        await self._ptz.ContinuousMove(
            {
                "ProfileToken": self._profile(),
                "Velocity": {"PanTilt": {"x": pan, "y": tilt}, "Zoom": {"x": zoom}},
                "Timeout": f"PT{timeout_s:g}S",
            }
        )

    async def stop(self) -> None:
        await self._ptz.Stop({"ProfileToken": self._profile()})

    async def position(self) -> tuple[float, float, float]:
        """Current (pan, tilt, zoom) in ONVIF's generic spaces (GetStatus): what the
        anonymiser projects the privacy masks with, during moves as well as at presets, and
        what the public PTZ limits are checked against."""
        status = await self._ptz.GetStatus({"ProfileToken": self._profile()})
        pos = status.Position
        return float(pos.PanTilt.x), float(pos.PanTilt.y), float(pos.Zoom.x)

    async def events(self) -> AsyncGenerator[OnvifEvent, None]:
        """PullPoint events until the subscription fails (the caller reconnects)."""
        lost = asyncio.Event()
        manager = await self.camera.create_pullpoint_manager(SUBSCRIPTION_TTL, lost.set)
        try:
            service = manager.get_service()
            while not lost.is_set():
                reply = await service.PullMessages({"Timeout": PULL_TIMEOUT, "MessageLimit": 50})
                for msg in reply.NotificationMessage or []:
                    yield parse_notification(msg)
        finally:
            await manager.shutdown()
