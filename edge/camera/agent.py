"""The camera edge agent: ONVIF control and events, video counts, audio, commands, health.

Everything it learns goes out through the shared store-and-forward link as events of
:mod:`schemas.camera`. The ONVIF session is reconnected with backoff whenever an operation
finds the camera gone; the video and audio readers reconnect on their own, so a stream that
stops mid-way resumes when the camera comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from core.mqtt_client import MqttClientSettings
from core.onvif_client import (
    REFUSED_ERRORS,
    UNREACHABLE_ERRORS,
    CameraAuthError,
    OnvifSession,
)
from device_configs.camera import Tour
from device_configs.models import Camera
from edge.camera.anonymiser import PtzPosition
from edge.camera.audio import AudioWorker
from edge.camera.calibration import with_calibration
from edge.camera.commands import CommandSubscriber, parse_command
from edge.camera.video import VideoWorker
from schemas.camera import (
    AudioLevel,
    CameraAudioLevelV1,
    CameraCommandResultV1,
    CameraCommandV1,
    CameraHealth,
    CameraHealthV1,
    CameraLoudNoiseV1,
    CameraMetadataV1,
    CameraOnvifEventV1,
    CommandResult,
    GotoPreset,
    LoudNoise,
    Move,
    Stop,
    TourStart,
    TourStop,
    VideoMetadata,
)
from schemas.envelope import EventBase, utc_now

log = logging.getLogger(__name__)
#: What a PTZ operation can raise: camera gone, camera refused, or not connected yet.
PTZ_ERRORS: tuple[type[BaseException], ...] = (
    *UNREACHABLE_ERRORS,
    *REFUSED_ERRORS,
    ConnectionError,
)
SOURCE = "edge.camera"
HEALTH_EVERY_S = 10.0
#: How often the PTZ position is read for the privacy masks while streaming. At the
#: simulator's top speed (0.5 units/s) the view moves ~6 % of its width between reads; the
#: masks of the last two positions are both filled, which covers that step.
POSITION_EVERY_S = 0.2
BACKOFF_MAX_S = 30.0


class Uplink(Protocol):
    def submit(self, event: EventBase) -> object: ...


class CameraAgent:
    def __init__(
        self,
        camera: Camera,
        credentials: tuple[str, str],
        uplink: Uplink,
        mqtt_settings: MqttClientSettings,
        detector_model: Path | None = None,
        detect_fps: float = 5.0,
    ) -> None:
        if camera.setup is None:
            raise ValueError(f"camera {camera.id} has no setup (ONVIF address, presets)")
        self.camera, self.setup = camera, camera.setup
        self.credentials, self.uplink = credentials, uplink
        self.mqtt_settings = mqtt_settings
        self.session: OnvifSession | None = None
        self.video = VideoWorker(
            self._from_thread(self._on_video),
            detector_model,
            detect_fps,
            presets=self.setup.presets,
            stream_url=self.setup.anonymised_stream,
        )
        self.audio = AudioWorker(self._from_thread(self._on_audio))
        self.reachable = False
        self.reconnects = 0
        self.last_error: str | None = None
        self.preset: str | None = None
        self.tour: str | None = None
        self._tour_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._commands: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1000)
        self.subscriber: CommandSubscriber | None = None
        self._media_started = False

    # ----- publishing ---------------------------------------------------------------
    def _emit(self, cls: type[EventBase], data: object) -> None:
        event = cls.model_validate(
            {
                "site": self.camera.site,
                "device": self.camera.id,
                "source": SOURCE,
                "event_time": utc_now(),
                "data": data,
            }
        )
        self.uplink.submit(event)

    def _from_thread(self, fn: Callable[[object], None]) -> Callable[[object], None]:
        def call(value: object) -> None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(fn, value)

        return call

    def _on_video(self, meta: object) -> None:
        assert isinstance(meta, VideoMetadata)
        self._emit(CameraMetadataV1, with_calibration(meta, self.setup))

    def _on_audio(self, result: object) -> None:
        if isinstance(result, AudioLevel):
            self._emit(CameraAudioLevelV1, result)
        elif isinstance(result, LoudNoise):
            self._emit(CameraLoudNoiseV1, result)

    def health(self) -> CameraHealth:
        return CameraHealth(
            reachable=self.reachable,
            streaming=self.video.streaming,
            stream_fps=round(self.video.fps, 2),
            reconnects=self.reconnects + self.video.reconnects,
            preset=self.preset,
            tour=self.tour,
            last_error=(
                self.last_error
                or self.video.last_error
                or (self.video.stream.last_error if self.video.stream else None)
                or self.audio.last_error
            ),
        )

    # ----- main loop ----------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self.subscriber = CommandSubscriber(
            self.mqtt_settings,
            self.camera.site,
            self.camera.id,
            self._commands,
            self._loop,
        )
        self.subscriber.start()
        tasks = [asyncio.create_task(self._command_loop()), asyncio.create_task(self._health())]
        try:
            await self._onvif_loop(stop)
        finally:
            for task in [*tasks, *([self._tour_task] if self._tour_task else [])]:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.subscriber.stop()
            await asyncio.to_thread(self.video.stop)
            await asyncio.to_thread(self.audio.stop)
            if self.session is not None:
                await self.session.close()

    async def _onvif_loop(self, stop: asyncio.Event) -> None:
        backoff = 1.0
        onvif = self.setup.onvif
        while not stop.is_set():
            session = OnvifSession(onvif.host, onvif.port, *self.credentials)
            try:
                info = await session.connect()
                self.session, self.reachable, backoff = session, True, 1.0
                self.last_error = None
                if not self._media_started:  # the readers reconnect by themselves
                    self._media_started = True
                    if self.video.stream is not None and self.camera.audio:
                        self.video.stream.audio_from = info.stream_uri
                    self.video.start(info.stream_uri)
                    if self.camera.audio:
                        self.audio.start(info.stream_uri)
                if self.preset is None and self.setup.presets:
                    await self.goto(self.setup.presets[0].name)
                await self._pump_events(stop, session)
            except CameraAuthError as exc:
                self.last_error = f"ONVIF authentication failed: {exc}"
            except (*UNREACHABLE_ERRORS, *REFUSED_ERRORS) as exc:
                self.last_error = f"ONVIF: {type(exc).__name__}: {exc}"
            self.reachable = False
            self.session = None
            await session.close()
            log.warning("camera %s: %s; retry in %.0fs", self.camera.id, self.last_error, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            self.reconnects += 1
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _pump_events(self, stop: asyncio.Event, session: OnvifSession) -> None:
        """Forward PullPoint events (and, while streaming, follow the PTZ position) until
        either fails (raises) or we stop."""

        async def pump() -> None:
            async for event in session.events():
                self._emit(CameraOnvifEventV1, event)

        async def follow() -> None:
            while True:
                pan, tilt, zoom = await session.position()
                self.video.anonymiser.set_position(PtzPosition(pan, tilt, zoom))
                await asyncio.sleep(POSITION_EVERY_S)

        tasks = {asyncio.create_task(pump())}
        if self.video.stream is not None:
            tasks.add(asyncio.create_task(follow()))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        for task in tasks:
            if task not in done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for task in tasks & done:
            task.result()  # the error that ended the subscription, for the reconnect loop

    async def _health(self) -> None:
        while True:
            self._emit(CameraHealthV1, self.health())
            await asyncio.sleep(HEALTH_EVERY_S)

    # ----- commands -----------------------------------------------------------------
    async def _command_loop(self) -> None:
        while True:
            payload = await self._commands.get()
            parsed = parse_command(payload, self.camera.site, self.camera.id)
            result = parsed if isinstance(parsed, CommandResult) else await self.execute(parsed)
            self._emit(CameraCommandResultV1, result)

    async def execute(self, cmd: CameraCommandV1) -> CommandResult:
        action, cid = cmd.data.command, cmd.data.command_id
        try:
            if isinstance(action, TourStart):
                return self.start_tour(cid, action.tour)
            if isinstance(action, TourStop):
                self.stop_tour()
            elif isinstance(action, GotoPreset):
                if not any(p.name == action.preset for p in self.setup.presets):
                    return CommandResult(
                        command_id=cid,
                        ok=False,
                        error="unknown_preset",
                        detail=f"no preset {action.preset!r}",
                    )
                await self.goto(action.preset)
            elif isinstance(action, Move):
                await self._session().move(action.pan, action.tilt, action.zoom, action.timeout_s)
                self.preset = None
            elif isinstance(action, Stop):
                await self._session().stop()
        except PTZ_ERRORS as exc:
            return CommandResult(
                command_id=cid,
                ok=False,
                error="camera_error",
                detail=f"{type(exc).__name__}: {exc}"[:500],
            )
        return CommandResult(command_id=cid, ok=True)

    def _session(self) -> OnvifSession:
        if self.session is None:
            raise ConnectionError("camera not connected")
        return self.session

    async def goto(self, preset: str) -> None:
        session = self._session()
        assert session.info is not None
        token = session.info.presets.get(preset)
        if token is None:
            raise ConnectionError(f"camera has no preset named {preset!r}")
        await session.goto_preset(token)
        self.preset = preset
        self.video.set_preset(self.setup.preset(preset))

    def start_tour(self, cid: str, name: str) -> CommandResult:
        try:
            tour = self.setup.tour(name)
        except KeyError:
            return CommandResult(
                command_id=cid, ok=False, error="unknown_tour", detail=f"no tour {name!r}"
            )
        self.stop_tour()
        self.tour = name
        self._tour_task = asyncio.create_task(self._run_tour(tour))
        return CommandResult(command_id=cid, ok=True)

    def stop_tour(self) -> None:
        if self._tour_task is not None:
            self._tour_task.cancel()
        self._tour_task, self.tour = None, None

    async def _run_tour(self, tour: Tour) -> None:
        while True:
            for step in tour.steps:
                with contextlib.suppress(*PTZ_ERRORS):
                    await self.goto(step.preset)
                await asyncio.sleep(step.dwell_s)
            if not tour.loop:
                self.tour = None
                return
