"""Venv side of the agent's anonymised RTSP stream: start ``stream_server.py``, feed it frames.

The camera's raw video never leaves the site: the central relay pulls *this* stream (the
camera config's ``anonymised_stream`` URL), made from frames the agent has already decoded
for counting and anonymised (:mod:`edge.camera.anonymiser`), encoded once here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

log = logging.getLogger(__name__)
SYSTEM_PYTHON = os.environ.get("TP_SYSTEM_PYTHON", "/usr/bin/python3")
SCRIPT = Path(__file__).with_name("stream_server.py")
READY_TIMEOUT_S = 30.0
RESTART_AFTER_S = 5.0


class StreamError(RuntimeError):
    pass


def bind_address(url: str) -> tuple[str, int, str]:
    """(host, port, path) the server listens on for an ``rtsp://host:port/path`` URL."""
    parts = urlsplit(url)
    if parts.scheme != "rtsp" or not parts.hostname or not parts.path.strip("/"):
        raise ValueError(f"anonymised stream must be rtsp://host:port/path, not {url!r}")
    return parts.hostname, parts.port or 554, parts.path


class AnonymisedStream:
    """One encoder + RTSP server child; ``send`` is called from the video thread."""

    def __init__(self, url: str, width: int, height: int, fps: int = 10) -> None:
        self.url = url
        self.host, self.port, self.path = bind_address(url)
        self.width, self.height, self.fps = width, height, fps
        self._proc: subprocess.Popen[bytes] | None = None
        self._failed_at = -RESTART_AFTER_S
        self._lock = threading.Lock()
        self.frames = 0
        self.last_error: str | None = None
        #: The camera's own RTSP URL when its sound should go with the video (set by the
        #: agent once ONVIF gave it); only the audio track is taken from it.
        self.audio_from: str | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the child and wait until it listens; raises StreamError otherwise."""
        proc = subprocess.Popen(
            [
                SYSTEM_PYTHON,
                str(SCRIPT),
                "--size",
                f"{self.width}x{self.height}",
                "--fps",
                str(self.fps),
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--path",
                self.path,
                *(["--audio-from", self.audio_from] if self.audio_from else []),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        ready: list[bytes] = []
        reader = threading.Thread(target=lambda: ready.append(proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(READY_TIMEOUT_S)
        if not ready or not ready[0].startswith(b"READY"):
            proc.kill()
            proc.wait()
            raise StreamError(
                f"anonymised stream server did not start on {self.host}:{self.port} (needs "
                f"{SYSTEM_PYTHON} with python3-gi, gir1.2-gst-rtsp-server-1.0, x264enc)"
            )
        self._proc = proc
        log.info("anonymised stream at %s", self.url)

    def send(self, frame: np.ndarray) -> None:
        """Hand one anonymised BGR frame of the configured size to the encoder. A dead child
        is restarted (at most every few seconds); the frames meanwhile are dropped."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                if time.monotonic() - self._failed_at < RESTART_AFTER_S:
                    return
                try:
                    self.stop()
                    self.start()
                except StreamError as exc:
                    self._failed_at, self.last_error = time.monotonic(), str(exc)
                    return
            proc = self._proc
            assert proc is not None and proc.stdin is not None
            try:
                proc.stdin.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
                proc.stdin.flush()
                self.frames += 1
            except (BrokenPipeError, ValueError) as exc:
                self._failed_at, self.last_error = time.monotonic(), f"stream: {exc}"
                proc.kill()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
