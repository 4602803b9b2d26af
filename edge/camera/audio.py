"""Camera microphone loudness (dBFS per 1 s window) and sudden-loud-noise detection, via PyAV.

A loud noise is judged against the scene's own recent level (running median), not a fixed
threshold: a market is always louder than a mangrove forest.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable

import av
import numpy as np

from schemas.camera import AudioLevel, LoudNoise

log = logging.getLogger(__name__)
FLOOR_DBFS = -120.0
BASELINE_WINDOWS = 30  # seconds of history for the running median
RISE_DB = 18.0  # this much above the median is "sudden"
MIN_LOUD_DBFS = -25.0  # ... and it must also be loud in absolute terms
REFRACTORY_S = 5.0  # one bang, one event
REOPEN_BACKOFF_MAX_S = 10.0


def dbfs(value: float) -> float:
    return max(FLOOR_DBFS, 20 * math.log10(value)) if value > 0 else FLOOR_DBFS


class LoudnessMeter:
    """Pure: feed float samples in [-1, 1]; get an AudioLevel (and maybe a LoudNoise)."""

    def __init__(self, rate: int, window_s: float = 1.0) -> None:
        self.window = int(rate * window_s)
        self.window_s = window_s
        self._buf: list[np.ndarray] = []
        self._n = 0
        self._history: deque[float] = deque(maxlen=BASELINE_WINDOWS)
        self._last_loud = -math.inf

    def feed(self, samples: np.ndarray, now: float) -> list[AudioLevel | LoudNoise]:
        self._buf.append(samples)
        self._n += len(samples)
        out: list[AudioLevel | LoudNoise] = []
        while self._n >= self.window:
            data = np.concatenate(self._buf)
            chunk, rest = data[: self.window], data[self.window :]
            self._buf, self._n = [rest], len(rest)
            rms = dbfs(float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64)))))
            peak = dbfs(float(np.max(np.abs(chunk))))
            out.append(
                AudioLevel(window_s=self.window_s, rms_dbfs=round(rms, 2), peak_dbfs=round(peak, 2))
            )
            if len(self._history) >= 3:
                base = statistics.median(self._history)
                if (
                    rms - base >= RISE_DB
                    and rms >= MIN_LOUD_DBFS
                    and now - self._last_loud >= REFRACTORY_S
                ):
                    self._last_loud = now
                    out.append(
                        LoudNoise(
                            peak_dbfs=round(peak, 2),
                            baseline_dbfs=round(base, 2),
                            rise_db=round(rms - base, 2),
                        )
                    )
            self._history.append(rms)
        return out


def to_float_mono(frame: av.AudioFrame) -> np.ndarray:
    """Any decoded PCM layout -> float mono in [-1, 1]."""
    data = frame.to_ndarray()
    if data.dtype == np.int16:
        data = data.astype(np.float32) / 32768.0
    elif data.dtype == np.int32:
        data = data.astype(np.float32) / 2147483648.0
    data = data.astype(np.float32)
    if frame.format.is_planar:
        return np.asarray(data.mean(axis=0))
    return np.asarray(data.reshape(-1, len(frame.layout.channels)).mean(axis=1))


class AudioWorker:
    def __init__(self, on_result: Callable[[AudioLevel | LoudNoise], None]) -> None:
        self._on_result = on_result
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._url = ""
        self.last_error: str | None = None

    def start(self, url: str) -> None:
        self._url = url
        self._thread = threading.Thread(target=self._run, name="audio", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                with av.open(
                    self._url, options={"rtsp_transport": "tcp", "timeout": "5000000"}, timeout=10
                ) as container:
                    if not container.streams.audio:
                        self.last_error = "stream has no audio track"
                        return
                    backoff = 0.5
                    self._decode(container)
            except (av.FFmpegError, OSError) as exc:
                self.last_error = f"audio: {exc}"
            if self._stop.wait(backoff):
                break
            backoff = min(backoff * 2, REOPEN_BACKOFF_MAX_S)

    def _decode(self, container: av.container.InputContainer) -> None:
        stream = container.streams.audio[0]
        meter: LoudnessMeter | None = None
        for frame in container.decode(stream):
            if self._stop.is_set():
                return
            if meter is None:
                meter = LoudnessMeter(frame.sample_rate)
            for result in meter.feed(to_float_mono(frame), time.monotonic()):
                self._on_result(result)
