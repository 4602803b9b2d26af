"""The simulated PTZ camera: ONVIF over HTTP/SOAP (aiohttp) plus the RTSP child process.

One :class:`CameraSim` is one camera: it owns the PTZ head, the scene (snapshots and motion
detection), PullPoint subscriptions and the GStreamer RTSP server running under the system
Python. ``stop_stream()`` / ``start_stream()`` let tests cut the video mid-way like a camera
whose encoder crashed, while the ONVIF service keeps answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import cv2
from aiohttp import web

from edge.camera_sim import device_media as dm
from edge.camera_sim import ptz_events as pe
from edge.camera_sim.ptz import Position, PtzHead, crop_window
from edge.camera_sim.rtsp_child import RtspChild
from edge.camera_sim.scene import Scene
from edge.camera_sim.soap import (
    Request,
    SoapFault,
    envelope,
    fault,
    parse_request,
    verify_token,
)

log = logging.getLogger(__name__)
Handler = Callable[["CameraSim", Request], str]
PTZ_TICK_S = 0.1  # how often a continuous move pushes a new crop window
_PUBLIC_OPS = {"GetSystemDateAndTime"}  # ONVIF lets clients read the clock to fix skew

HANDLERS: dict[str, dict[str, Handler]] = {
    "device_service": {
        "GetSystemDateAndTime": dm.get_system_date_and_time,
        "GetDeviceInformation": dm.get_device_information,
        "GetCapabilities": dm.get_capabilities,
        "GetServices": dm.get_services,
        "GetScopes": dm.get_scopes,
    },
    "media_service": {
        "GetProfiles": dm.get_profiles,
        "GetStreamUri": dm.get_stream_uri,
        "GetSnapshotUri": dm.get_snapshot_uri,
        "GetVideoSources": dm.get_video_sources,
    },
    "ptz_service": {
        "GetNodes": pe.get_nodes,
        "GetPresets": pe.get_presets,
        "GotoPreset": pe.goto_preset,
        "ContinuousMove": pe.continuous_move,
        "AbsoluteMove": pe.absolute_move,
        "Stop": pe.stop,
        "GetStatus": pe.get_status,
    },
    "events_service": {
        "GetServiceCapabilities": pe.get_event_service_capabilities,
        "GetEventProperties": pe.get_event_properties,
        "CreatePullPointSubscription": pe.create_pull_point_subscription,
    },
}


class CameraSim:
    def __init__(
        self,
        video: Path,
        *,
        username: str,
        password: str,
        host: str = "127.0.0.1",
        onvif_port: int = 0,
        rtsp_port: int = 0,
        presets: dict[str, Position] | None = None,
        serial: str = "SIM0001",
        audio: str = "pcmu",
    ) -> None:
        self.video, self.username, self.password = video, username, password
        self.host, self.onvif_port, self.serial = host, onvif_port, serial
        self.subscriptions: dict[str, pe.Subscription] = {}
        self.scene = Scene(video, on_motion=self._on_motion_thread)
        self.rtsp = RtspChild(
            video,
            self.scene.width,
            self.scene.height,
            int(self.scene.fps),
            host=host,
            port=rtsp_port,
            audio=audio,
        )
        self.head = PtzHead(
            presets={f"preset_{i}": (n, p) for i, (n, p) in enumerate((presets or {}).items())},
            on_change=self._on_ptz_change,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._digest_nonces: set[str] = set()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.onvif_port}"

    @property
    def rtsp_url(self) -> str:
        return self.rtsp.url

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.start_stream()
        self.scene.start()
        app = web.Application(client_max_size=256 * 1024)
        app.router.add_post("/onvif/subscription/{sub}", self._subscription)
        app.router.add_post("/onvif/{service}", self._service)
        app.router.add_get("/snapshot.jpg", self._snapshot)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.onvif_port)
        await site.start()
        if self.onvif_port == 0:
            server = site._server
            assert server is not None
            self.onvif_port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._tasks = [asyncio.create_task(self._ptz_ticker()), asyncio.create_task(self._reaper())]
        log.info("camera %s: ONVIF %s, RTSP %s", self.serial, self.base_url, self.rtsp_url)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
        await self.rtsp.stop()
        await asyncio.to_thread(self.scene.close)

    async def start_stream(self) -> None:
        await self.rtsp.start()
        self._on_ptz_change(self.head.position())

    async def stop_stream(self) -> None:
        await self.rtsp.stop()

    async def loud_noise(self, seconds: float = 0.6) -> None:
        """Make a sudden loud noise on the audio track (and raise the ONVIF audio event)."""
        await self.rtsp.send({"bang": seconds})
        self.publish(
            "tns1:AudioAnalytics/Audio/DetectedSound",
            {"Source": "as_1"},
            {"IsSoundDetected": "true"},
        )

    # --- events -----------------------------------------------------------------------------
    def motion_message(self) -> str:
        state = "true" if self.scene.motion else "false"
        return pe.notification("tns1:VideoSource/MotionAlarm", {"Source": "vs_1"}, {"State": state})

    def publish(self, topic: str, source: dict[str, str], data: dict[str, str]) -> None:
        msg = pe.notification(topic, source, data)
        for sub in self.subscriptions.values():
            sub.push(msg)

    def publish_ptz(self, what: str, data: dict[str, str]) -> None:
        self.publish(f"tns1:PTZController/{what}", {"PTZConfigurationToken": "ptz_1"}, data)

    def _on_motion_thread(self, _active: bool) -> None:
        if self._loop is not None and not self._loop.is_closed():
            msg = self.motion_message()
            self._loop.call_soon_threadsafe(self._push_all, msg)

    def _push_all(self, msg: str) -> None:
        for sub in self.subscriptions.values():
            sub.push(msg)

    def _on_ptz_change(self, pos: Position) -> None:
        window = crop_window(pos, self.scene.width, self.scene.height)
        if self._loop is not None:
            self._loop.create_task(self.rtsp.send({"crop": list(window)}))

    async def _ptz_ticker(self) -> None:
        while True:
            self.head.tick()
            await asyncio.sleep(PTZ_TICK_S)

    async def _reaper(self) -> None:
        """Drop subscriptions the client stopped renewing, as a camera would."""
        while True:
            await asyncio.sleep(5)
            now = time.monotonic()
            for sub_id in [k for k, s in self.subscriptions.items() if s.expires < now]:
                del self.subscriptions[sub_id]

    # --- HTTP -------------------------------------------------------------------------------
    async def _soap(
        self, request: web.Request, run: Callable[[Request], Awaitable[str]]
    ) -> web.Response:
        try:
            req, token = parse_request(await request.read())
            if req.operation not in _PUBLIC_OPS:
                verify_token(token, self.username, self.password)
            body = await run(req)
        except SoapFault as exc:
            status = 401 if exc.subcode == "ter:NotAuthorized" else 400
            return web.Response(body=fault(exc), status=status, content_type="application/soap+xml")
        return web.Response(body=envelope(body), content_type="application/soap+xml")

    async def _service(self, request: web.Request) -> web.Response:
        ops = HANDLERS.get(request.match_info["service"])
        if ops is None:
            raise web.HTTPNotFound()

        async def run(req: Request) -> str:
            handler = ops.get(req.operation)
            if handler is None:
                raise SoapFault("ter:ActionNotSupported", f"{req.operation} is not supported")
            return handler(self, req)

        return await self._soap(request, run)

    async def _subscription(self, request: web.Request) -> web.Response:
        sub_id = request.match_info["sub"]

        async def run(req: Request) -> str:
            sub = self.subscriptions.get(sub_id)
            if sub is None:
                raise SoapFault("ter:InvalidArgVal", f"no subscription {sub_id} (expired?)")
            if req.operation == "PullMessages":
                return await pe.pull_messages(self, sub, req)
            if req.operation == "Renew":
                return pe.renew(sub, req)
            if req.operation == "SetSynchronizationPoint":
                return pe.set_synchronization_point(self, sub)
            if req.operation == "Unsubscribe":
                del self.subscriptions[sub_id]
                return "<wsnt:UnsubscribeResponse/>"
            raise SoapFault("ter:ActionNotSupported", f"{req.operation} is not supported")

        return await self._soap(request, run)

    async def _snapshot(self, request: web.Request) -> web.Response:
        if not self._digest_ok(request):
            nonce = secrets.token_hex(16)
            self._digest_nonces = {*list(self._digest_nonces)[-50:], nonce}
            challenge = f'Digest realm="sim", qop="auth", nonce="{nonce}", algorithm=MD5'
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        frame = self.scene.frame()
        if frame is None:
            return web.Response(status=503, text="no frame yet")
        x, y, w, h = crop_window(self.head.position(), self.scene.width, self.scene.height)
        view = cv2.resize(frame[y : y + h, x : x + w], (dm.OUT_W, dm.OUT_H))
        ok, jpeg = cv2.imencode(".jpg", view, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            return web.Response(status=500, text="JPEG encoding failed")
        return web.Response(body=jpeg.tobytes(), content_type="image/jpeg")

    def _digest_ok(self, request: web.Request) -> bool:
        """RFC 7616 HTTP Digest (MD5, qop=auth), what camera snapshot URLs use."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Digest "):
            return False
        parts: dict[str, str] = {}
        for item in header[7:].split(","):
            key, _, value = item.strip().partition("=")
            parts[key] = value.strip('"')
        if parts.get("username") != self.username or parts.get("nonce") not in self._digest_nonces:
            return False

        def md5(s: str) -> str:
            return hashlib.md5(s.encode()).hexdigest()

        ha1 = md5(f"{self.username}:sim:{self.password}")
        ha2 = md5(f"{request.method}:{parts.get('uri', '')}")
        expected = md5(
            f"{ha1}:{parts['nonce']}:{parts.get('nc', '')}:{parts.get('cnonce', '')}:auth:{ha2}"
        )
        return secrets.compare_digest(expected, parts.get("response", ""))
