"""Run ``rtsp_server.py`` under the system Python and talk to it over stdin.

The GStreamer RTSP server bindings exist only for Debian's ``/usr/bin/python3`` (python3-gi,
gir1.2-gst-rtsp-server-1.0), so the venv simulator runs it as a child process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path

from core.ports import free_port

SYSTEM_PYTHON = os.environ.get("TP_SYSTEM_PYTHON", "/usr/bin/python3")
SCRIPT = Path(__file__).with_name("rtsp_server.py")
READY_TIMEOUT_S = 30.0  # a cold GStreamer registry scan on a loaded machine takes seconds


class RtspChildError(RuntimeError):
    pass


class RtspChild:
    def __init__(
        self,
        video: Path,
        width: int,
        height: int,
        fps: int,
        *,
        host: str,
        port: int = 0,
        slices: int = 1,
        audio: str = "pcmu",
    ) -> None:
        """``audio``: the microphone codec, "pcmu" (G.711) or "aac" (AAC-LC, RFC 3640)."""
        self.video, self.width, self.height, self.fps = video, width, height, fps
        self.slices, self.audio = slices, audio
        self.host = host
        self.port = port or free_port(host=host)
        self._proc: asyncio.subprocess.Process | None = None
        self._last_crop: dict[str, object] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://{self.host}:{self.port}/stream"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        if self.running:
            return
        self._proc = await asyncio.create_subprocess_exec(
            SYSTEM_PYTHON,
            str(SCRIPT),
            "--video",
            str(self.video),
            "--size",
            f"{self.width}x{self.height}",
            "--fps",
            str(self.fps),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--slices",
            str(self.slices),
            "--audio",
            self.audio,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), READY_TIMEOUT_S)
        except TimeoutError:
            line = b""
        if not line.startswith(b"READY"):
            await self.stop()
            raise RtspChildError(
                f"RTSP server did not start (needs {SYSTEM_PYTHON} with python3-gi and "
                "gir1.2-gst-rtsp-server-1.0, plus ffmpeg and gstreamer1.0-plugins-ugly)"
            )
        if self._last_crop is not None:
            await self.send(self._last_crop)

    async def send(self, message: dict[str, object]) -> None:
        if "crop" in message:
            self._last_crop = message
        if not self.running:
            return
        assert self._proc is not None and self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._proc.stdin.write(json.dumps(message).encode() + b"\n")
            await self._proc.stdin.drain()

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
