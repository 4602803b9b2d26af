"""Video analysis loop: read the stream, count people, emit one summary per second, and
(where the camera has an ``anonymised_stream``) anonymise every frame and encode it once.

Runs in its own thread because OpenCV reads and analysis block. A stream that stops is
reopened with backoff; ``set_preset`` swaps the geometry (and resets the background model,
since a new view is a new scene).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2

from device_configs.camera import Preset
from edge.camera.anonymiser import FrameAnonymiser
from edge.camera.counting import PeopleCounter, detect_every
from edge.camera.detector import PersonDetector
from edge.camera.geometry import Geometry
from edge.camera.stream_out import AnonymisedStream
from schemas.camera import LineCount, VideoMetadata

log = logging.getLogger(__name__)
PROC_W, PROC_H = 640, 480  # analysis resolution: what the counting thresholds are tuned for
WINDOW_S = 1.0
REOPEN_BACKOFF_MAX_S = 10.0
STALE_AFTER_S = 3.0  # no frame for this long = not streaming


class VideoWorker:
    def __init__(
        self,
        on_window: Callable[[VideoMetadata], None],
        detector_model: Path | None = None,
        detect_fps: float = 5.0,
        presets: Sequence[Preset] = (),
        stream_url: str | None = None,
    ) -> None:
        self._on_window = on_window
        #: Heads and privacy masks of every analysed frame; the ONVIF poller moves its masks.
        self.anonymiser = FrameAnonymiser(presets, PROC_W, PROC_H)
        self.stream = AnonymisedStream(stream_url, PROC_W, PROC_H) if stream_url else None
        self._detector_model = detector_model
        self._detect_fps = detect_fps
        self._detector: PersonDetector | None = None
        #: "detector" or "motion" (the no-model fallback), as in every count event.
        self.counter_kind = "motion"
        self._url: str | None = None
        self._preset: Preset | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reconnects = 0
        self.fps = 0.0
        self.last_frame_at = 0.0
        self.last_error: str | None = None

    @property
    def streaming(self) -> bool:
        return time.monotonic() - self.last_frame_at < STALE_AFTER_S

    def start(self, url: str) -> None:
        self._url = url
        os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        self._thread = threading.Thread(target=self._run, name="video", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self.stream is not None:
            self.stream.stop()

    def set_preset(self, preset: Preset | None) -> None:
        with self._lock:
            self._preset = preset

    def _run(self) -> None:
        if self.stream is not None:  # listen before the first frame: the relay may connect
            try:
                self.stream.start()
            except RuntimeError as exc:
                self.last_error = str(exc)  # retried on the first frames
        backoff = 0.5
        while not self._stop.is_set():
            cap = cv2.VideoCapture(self._url or "", cv2.CAP_FFMPEG)
            if not cap.isOpened():
                self.last_error = f"cannot open stream {self._url}"
            else:
                backoff = 0.5
                self._analyse(cap)
            cap.release()
            if self._stop.wait(backoff):
                break
            self.reconnects += 1
            backoff = min(backoff * 2, REOPEN_BACKOFF_MAX_S)

    def _load_detector(self) -> PersonDetector | None:
        """The person detector once per worker; None (motion fallback) without a model."""
        if self._detector is None and self._detector_model is not None:
            try:
                self._detector = PersonDetector(self._detector_model)
            except (OSError, RuntimeError, ImportError) as exc:
                log.error("person detector unavailable (%s): counting motion instead", exc)
                self._detector_model = None
        self.counter_kind = "detector" if self._detector is not None else "motion"
        return self._detector

    def _counter(self, preset: Preset | None, source_fps: float) -> PeopleCounter:
        detector = self._load_detector()
        every = detect_every(source_fps, self._detect_fps)
        geometry = Geometry.from_preset(preset, PROC_W, PROC_H)
        return PeopleCounter(geometry, PROC_W, PROC_H, detector, every)

    def _analyse(self, cap: cv2.VideoCapture) -> None:
        preset = self._preset
        source_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        counter = self._counter(preset, source_fps)
        window_start = time.monotonic()
        frames, zone_sum, people_sum, motion_sum, lag = 0, dict[str, int](), 0, 0.0, 0.0
        while not self._stop.is_set():
            before = time.monotonic()
            ok, frame = cap.read()
            if not ok:
                self.last_error = "stream stopped"
                return
            self.last_frame_at = got = time.monotonic()
            with self._lock:
                if self._preset is not preset:  # view changed: new scene, new model
                    preset = self._preset
                    counter = self._counter(preset, source_fps)
                    zone_sum = {}
            small = cv2.resize(frame, (PROC_W, PROC_H))
            counts = counter.process(small)
            if self.stream is not None:  # after counting: the counter saw the real picture
                self.anonymiser.process(small, counter.boxes)
                self.stream.send(small)
            frames += 1
            for name, n in counts.zones.items():
                zone_sum[name] = zone_sum.get(name, 0) + n
            people_sum += counts.people
            motion_sum += counts.motion
            # A read that returns at once means frames were queued: we are behind the stream.
            lag = lag * 0.9 + (0.1 * (time.monotonic() - got) if got - before < 0.005 else 0.0)
            elapsed = time.monotonic() - window_start
            if elapsed >= WINDOW_S:
                self.fps = frames / elapsed
                lines = [
                    LineCount(line=n, in_count=i, out_count=o)
                    for n, (i, o) in counter.take_lines().items()
                ]
                self._on_window(
                    VideoMetadata(
                        window_s=round(elapsed, 3),
                        preset=preset.name if preset else None,
                        zones={k: round(v / frames) for k, v in zone_sum.items()},
                        lines=lines,
                        people=round(people_sum / frames),
                        motion=min(1.0, motion_sum / frames),
                        fps=round(self.fps, 2),
                        lag_s=round(lag, 3),
                        counter=counts.counter,
                    )
                )
                window_start = time.monotonic()
                frames, zone_sum, people_sum, motion_sum = 0, {}, 0, 0.0
