"""What the simulated camera sees, for snapshots and the camera's own motion detector.

A thread decodes the same looping video the RTSP server streams (at the source frame rate)
and keeps the latest frame. Motion is what an in-camera detector would report: the share of
changed pixels between consecutive frames at low resolution, with hysteresis so the alarm
does not flicker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

MOTION_ON = 0.004  # fraction of changed pixels that raises the alarm (a person is ~0.5%)
MOTION_OFF = 0.002
DIFF_THRESHOLD = 25  # grey-level change counted as motion


class Scene:
    """Latest frame + motion alarm; ``on_motion(active)`` is called from the decode thread."""

    def __init__(self, video: Path, on_motion: Callable[[bool], None]) -> None:
        cap = cv2.VideoCapture(str(video))
        if not cap.isOpened():
            raise FileNotFoundError(f"cannot open video {video}")
        self.fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self._cap = cap
        self._on_motion = on_motion
        self._frame: np.ndarray | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.motion = False
        self._thread = threading.Thread(target=self._run, name="scene", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._cap.release()

    def frame(self) -> np.ndarray | None:
        with self._lock:
            return None if self._frame is None else self._frame.copy()

    def _run(self) -> None:
        prev: np.ndarray | None = None
        period = 1.0 / self.fps
        next_at = time.monotonic()
        while not self._stop.is_set():
            ok, frame = self._cap.read()
            if not ok:  # end of file: loop like the RTSP stream does
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            with self._lock:
                self._frame = frame
            small = cv2.cvtColor(cv2.resize(frame, (160, 120)), cv2.COLOR_BGR2GRAY)
            if prev is not None:
                changed = float(np.mean(cv2.absdiff(small, prev) > DIFF_THRESHOLD))
                self._update_motion(changed)
            prev = small
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _update_motion(self, changed: float) -> None:
        if not self.motion and changed >= MOTION_ON:
            self.motion = True
            self._on_motion(True)
        elif self.motion and changed <= MOTION_OFF:
            self.motion = False
            self._on_motion(False)
